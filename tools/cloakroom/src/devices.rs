//! `cloakroom devices`: the cameras, microphones, speakers, encoders and
//! decoders this device has, as text or as the JSON the web page shows.

use anyhow::Result;
use clap::Args;
use cloakroom_media::devices::DeviceReport;

#[derive(Args)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DevicesArgs) -> Result<()> {
    let report = DeviceReport::discover();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
