//! MD5 through AWS-LC's assembly implementation (the library rustls already
//! links for the S3 client): about 25% faster than the portable md-5 crate,
//! and MD5 is the one hash every upload must run on a single core. Its state
//! is saved in md-5 0.11's serialised layout, so saved upload states stay
//! readable whichever implementation wrote them.

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// An MD5 hasher.
pub struct Md5 {
    ctx: MD5_CTX,
}

// SAFETY: MD5_CTX is plain data (words, counters and a byte buffer) with no
// pointers; AWS-LC keeps no other reference to it between calls.
unsafe impl Send for Md5 {}

/// Bytes in a saved state: md-5's core (4 state words, u64 block count),
/// then its block buffer (1 length byte, 63 data bytes).
pub const STATE_LEN: usize = 24 + 64;
const BLOCK: u64 = 64;

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        // SAFETY: MD5_Init fully initialises the (zeroed, plain-data) context.
        unsafe {
            let mut ctx: MD5_CTX = std::mem::zeroed();
            MD5_Init(&mut ctx);
            Md5 { ctx }
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: `data` is a valid slice for its length; `ctx` was initialised.
        unsafe {
            MD5_Update(&mut self.ctx, data.as_ptr().cast(), data.len());
        }
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` has the 16 bytes MD5_Final writes.
        unsafe {
            MD5_Final(out.as_mut_ptr(), &mut self.ctx);
        }
        out
    }

    /// One-shot digest.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(data);
        h.finalize()
    }

    /// The state after the bytes hashed so far, in md-5 0.11's layout.
    pub fn serialize(&self) -> Vec<u8> {
        let c = &self.ctx;
        let pos = c.num as usize;
        let bytes = (u64::from(c.Nh) << 32 | u64::from(c.Nl)) / 8;
        let mut out = Vec::with_capacity(STATE_LEN);
        for w in c.h {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&(bytes / BLOCK).to_le_bytes());
        out.push(pos as u8);
        out.extend_from_slice(&c.data[..pos]);
        out.resize(STATE_LEN, 0);
        out
    }

    /// Restores a state written by [`Md5::serialize`] (or by md-5 0.11).
    pub fn deserialize(state: &[u8]) -> Option<Md5> {
        if state.len() != STATE_LEN {
            return None;
        }
        let (core, buf) = state.split_at(24);
        let pos = usize::from(buf[0]);
        if pos >= BLOCK as usize || buf[1 + pos..].iter().any(|&b| b != 0) {
            return None;
        }
        let mut md5 = Md5::new();
        let c = &mut md5.ctx;
        for (w, b) in c.h.iter_mut().zip(core[..16].chunks_exact(4)) {
            *w = u32::from_le_bytes(b.try_into().ok()?);
        }
        let blocks = u64::from_le_bytes(core[16..24].try_into().ok()?);
        let bits = blocks
            .wrapping_mul(BLOCK)
            .wrapping_add(pos as u64)
            .wrapping_mul(8);
        c.Nl = bits as u32;
        c.Nh = (bits >> 32) as u32;
        c.data[..pos].copy_from_slice(&buf[1..1 + pos]);
        c.num = pos as _;
        Some(md5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::md5::Digest as _;
    use ::md5::digest::common::hazmat::{SerializableState, SerializedState};

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn matches_known_digests() {
        assert_eq!(
            hex::encode(Md5::digest(b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex::encode(Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        let d = data(1_000_003);
        assert_eq!(Md5::digest(&d), <[u8; 16]>::from(::md5::Md5::digest(&d)));
    }

    #[test]
    fn state_layout_is_md5_crates() {
        let d = data(5000);
        for split in [0, 1, 55, 63, 64, 65, 127, 128, 1000, 4096, 4999] {
            let (a, b) = d.split_at(split);
            // Ours -> md-5: same bytes, and md-5 goes on to the same digest.
            let mut ours = Md5::new();
            ours.update(a);
            let mut theirs = ::md5::Md5::new();
            theirs.update(a);
            assert_eq!(
                ours.serialize(),
                theirs.serialize().to_vec(),
                "split {split}"
            );
            let arr = SerializedState::<::md5::Md5>::try_from(&ours.serialize()[..]).unwrap();
            let mut theirs = ::md5::Md5::deserialize(&arr).unwrap();
            theirs.update(b);
            // md-5 -> ours.
            let mut back = Md5::deserialize(&theirs.serialize()).unwrap();
            let mut ours2 = Md5::deserialize(&ours.serialize()).unwrap();
            ours2.update(b);
            let want = ::md5::Md5::digest(&d);
            assert_eq!(ours2.finalize(), <[u8; 16]>::from(want), "split {split}");
            assert_eq!(theirs.finalize(), want, "split {split}");
            back.update(b"");
            assert_eq!(back.finalize(), Md5::digest(&d), "split {split}");
        }
    }

    #[test]
    fn rejects_malformed_states() {
        assert!(Md5::deserialize(&[0u8; 10]).is_none());
        let mut s = Md5::new().serialize();
        s[24] = 64;
        assert!(Md5::deserialize(&s).is_none());
        let mut s = Md5::new().serialize();
        s[30] = 1; // data past the length byte
        assert!(Md5::deserialize(&s).is_none());
    }
}
