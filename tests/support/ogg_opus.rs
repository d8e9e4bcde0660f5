//! Ogg Opus files, as Discord records voice messages: the tests speak a
//! sentence with espeak-ng and encode it here with libopus (the encoder
//! songbird links), one 20 ms packet per Ogg packet.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use songbird::driver::opus::{Application, Bitrate, Channels, Encoder};

/// Opus's own rate: granule positions count 48 kHz samples whatever the input.
const GRANULE_RATE: u64 = 48_000;
/// The encoder's input: what `decode_mono_16k` gives.
const RATE: u32 = 16_000;
const FRAME: usize = RATE as usize / 50;
const SERIAL: u32 = 0x5a4d_0001;

/// `audio` (WAV, MP3, …) re-encoded as mono Ogg Opus.
pub fn from_audio(audio: Vec<u8>) -> Vec<u8> {
    let samples = sandbot::services::speech::audio::decode_mono_16k(audio, 600).expect("readable test audio");
    encode(&samples)
}

/// Mono 16 kHz samples as an Ogg Opus file.
pub fn encode(samples: &[f32]) -> Vec<u8> {
    let mut encoder = Encoder::new(RATE, Channels::Mono, Application::Audio).expect("an Opus encoder");
    // Discord's voice messages are 32 kb/s and up.
    encoder.set_bitrate(Bitrate::Bits(32_000)).expect("a bitrate");
    let mut out = Vec::new();
    let mut writer = PacketWriter::new(&mut out);

    // RFC 7845: the identification header, then the comment header, each
    // on a page of its own.
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&RATE.to_le_bytes()); // input rate, informational
    head.extend_from_slice(&0i16.to_le_bytes()); // gain
    head.push(0); // mapping family: mono/stereo
    writer.write_packet(head, SERIAL, PacketWriteEndInfo::EndPage, 0).expect("write");
    let vendor = b"sandbot tests";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    writer.write_packet(tags, SERIAL, PacketWriteEndInfo::EndPage, 0).expect("write");

    let frames: Vec<Vec<f32>> = samples
        .chunks(FRAME)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(FRAME, 0.0);
            frame
        })
        .collect();
    let per_frame = GRANULE_RATE * FRAME as u64 / u64::from(RATE);
    for (i, frame) in frames.iter().enumerate() {
        let packet = encoder.encode_vec_float(frame, 4000).expect("encode a frame");
        let end = if i + 1 == frames.len() { PacketWriteEndInfo::EndStream } else { PacketWriteEndInfo::NormalPacket };
        writer.write_packet(packet, SERIAL, end, (i as u64 + 1) * per_frame).expect("write");
    }
    drop(writer);
    out
}
