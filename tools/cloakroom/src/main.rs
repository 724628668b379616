//! `cloakroom`: the command-line tool for cloakroom devices.
//!
//! `cloakroom frame seal|open` seals and opens single frames in every wire
//! format, so anyone can check a frame by hand or against another
//! implementation.

#![forbid(unsafe_code)]

mod devices;
mod frame;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cloakroom", version, about = "cloakroom meeting-room appliance tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal or open single frames (hex in, hex out).
    #[command(subcommand)]
    Frame(frame::FrameCommand),
    /// List cameras, microphones, speakers, encoders and decoders.
    Devices(devices::DevicesArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Frame(cmd) => frame::run(cmd),
        Command::Devices(args) => devices::run(args),
    };
    if let Err(err) = result {
        eprintln!("cloakroom: {err:#}");
        std::process::exit(1);
    }
}
