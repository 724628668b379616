//! Makes a value for `web.admin_password_hash` in the config file.
//!
//! `printf '%s' 'the password' | cargo run -p cloakroom-appliance --example hash-password`
//!
//! Reads the password from standard input (one line; a trailing newline is
//! dropped) so it does not end up in the shell history, and prints
//! `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.

use std::io::Read as _;

use cloakroom_appliance::pairing::{OsRandom, PasswordHash};
use zeroize::Zeroizing;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() || password.len() > 256 {
        return Err("the password must be 1 to 256 bytes".into());
    }
    let mut rng = OsRandom::new()?;
    println!("{}", PasswordHash::create(password, &mut rng).to_stored());
    Ok(())
}
