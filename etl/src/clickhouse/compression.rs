//! How insert bodies travel to ClickHouse.
//!
//! LZ4 in ClickHouse's own block format (what `clickhouse-client` sends, `decompress=1` on the
//! HTTP interface) costs a fraction of gzip's CPU on both sides; gzip (`Content-Encoding`) is
//! smaller on the wire, for a ClickHouse at the far end of a slow link.

use std::io::Write;

/// Uncompressed bytes per LZ4 block (ClickHouse's own `max_compress_block_size`).
const LZ4_BLOCK_BYTES: usize = 1 << 20;
/// CityHash128 checksum, then method, compressed size, uncompressed size.
const LZ4_HEADER_BYTES: usize = 16 + 1 + 4 + 4;
/// ClickHouse's method byte for LZ4.
const LZ4_METHOD: u8 = 0x82;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    /// gzip at this level (1–9).
    Gzip(u32),
}

impl Compression {
    /// The body to send for `data`.
    pub fn compress(self, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(data),
            Compression::Lz4 => Ok(lz4_blocks(&data)),
            Compression::Gzip(level) => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::new(level),
                );
                encoder.write_all(&data)?;
                encoder.finish()
            }
        }
    }
}

/// `data` as ClickHouse compressed blocks: each block is the CityHash128 (v1.0.2) of what
/// follows it, the method byte, the compressed size (header included) and the uncompressed
/// size (little-endian), then the LZ4 block.
fn lz4_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + LZ4_HEADER_BYTES);
    for chunk in data.chunks(LZ4_BLOCK_BYTES) {
        let start = out.len();
        let bound = lz4_flex::block::get_maximum_output_size(chunk.len());
        out.resize(start + LZ4_HEADER_BYTES + bound, 0);
        let written = lz4_flex::block::compress_into(chunk, &mut out[start + LZ4_HEADER_BYTES..])
            .expect("the buffer holds the worst case");
        out.truncate(start + LZ4_HEADER_BYTES + written);
        let block = &mut out[start..];
        block[16] = LZ4_METHOD;
        // Both sizes fit: a block is at most 1 MiB before and its bound after compression.
        block[17..21].copy_from_slice(&((written + 9) as u32).to_le_bytes());
        block[21..25].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        // ClickHouse stores the hash's two 64-bit halves low half first.
        let checksum = cityhash_rs::cityhash_102_128(&block[16..]).rotate_right(64);
        block[..16].copy_from_slice(&checksum.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads blocks back the way ClickHouse does, checking each checksum.
    fn decompress(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let compressed = u32::from_le_bytes(body[17..21].try_into().unwrap()) as usize;
            let size = u32::from_le_bytes(body[21..25].try_into().unwrap()) as usize;
            let checksum = cityhash_rs::cityhash_102_128(&body[16..16 + compressed]).rotate_right(64);
            assert_eq!(body[..16], checksum.to_le_bytes());
            assert_eq!(body[16], LZ4_METHOD);
            let start = out.len();
            out.resize(start + size, 0);
            let written =
                lz4_flex::block::decompress_into(&body[25..16 + compressed], &mut out[start..]).unwrap();
            assert_eq!(written, size);
            body = &body[16 + compressed..];
        }
        out
    }

    #[test]
    fn lz4_blocks_round_trip_across_block_boundaries() {
        let data: Vec<u8> = (0..(LZ4_BLOCK_BYTES * 2 + 12_345))
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        let body = Compression::Lz4.compress(data.clone()).unwrap();
        assert!(body.len() < data.len());
        assert_eq!(decompress(&body), data);
        assert!(Compression::Lz4.compress(Vec::new()).unwrap().is_empty());
    }
}
