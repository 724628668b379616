//! `cloakroom`: the command-line tool for cloakroom devices.
//!
//! `cloakroom frame seal|open` seals and opens single frames in every wire
//! format, so anyone can check a frame by hand or against another
//! implementation. `cloakroom devices` lists what the device could use.
//! `cloakroom pair|status|join|leave|mute|verify` talk to a device's API.

#![forbid(unsafe_code)]

mod devices;
mod frame;
mod remote;

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
    /// Pair with a device using the code on its room screen (keeps the session).
    Pair(remote::PairArgs),
    /// The device's room: state, meeting, participants, encryption, media.
    Status(remote::StatusArgs),
    /// Ask the device to join a meeting (`-`: the link from stdin).
    Join(remote::JoinArgs),
    /// Ask the device to leave its meeting.
    Leave,
    /// Mute or unmute the device's microphone.
    Mute(remote::MuteArgs),
    /// Verify who a participant is (Jitsi meetings): start, then confirm or reject the code.
    Verify(remote::VerifyArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Frame(cmd) => frame::run(cmd),
        Command::Devices(args) => devices::run(args),
        Command::Pair(args) => remote::pair(args),
        Command::Status(args) => remote::status(args),
        Command::Join(args) => remote::join(args),
        Command::Leave => remote::leave(),
        Command::Mute(args) => remote::mute(args),
        Command::Verify(args) => remote::verify(args),
    };
    if let Err(err) = result {
        eprintln!("cloakroom: {err:#}");
        std::process::exit(1);
    }
}
