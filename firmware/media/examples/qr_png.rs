//! Writes a PNG of a QR code, as a phone held up to the room's camera
//! would show it: the code (8 px a module, with its quiet zone) in the
//! middle of a 640×480 grey picture. For the e2e tests' still-picture
//! camera (`camera = "image:PATH"`).
//!
//! `cargo run -p cloakroom-media --example qr_png -- OUT.png < text`
//! (the text on stdin: a meeting link carries its key).

use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os().nth(1).ok_or("usage: qr_png OUT.png < text")?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let code = qrcode::QrCode::new(text.trim_end_matches('\n').as_bytes())?;
    let modules = code.to_colors();
    let side = code.width();
    let (w, h, px) = (640usize, 480usize, 8usize);
    let total = (side + 8) * px;
    if total > h {
        return Err(format!("the code is {side} modules: too big for {w}x{h} at {px} px a module").into());
    }
    let mut luma = vec![150u8; w * h];
    let (x0, y0) = ((w - total) / 2, (h - total) / 2);
    for y in 0..total {
        for x in 0..total {
            let (mx, my) = ((x / px).wrapping_sub(4), (y / px).wrapping_sub(4));
            let dark = mx < side && my < side && modules[my * side + mx] == qrcode::Color::Dark;
            luma[(y0 + y) * w + x0 + x] = if dark { 25 } else { 235 };
        }
    }
    let file = std::fs::File::create(&out)?;
    let mut png = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    png.set_color(png::ColorType::Grayscale);
    png.set_depth(png::BitDepth::Eight);
    png.write_header()?.write_image_data(&luma)?;
    Ok(())
}
