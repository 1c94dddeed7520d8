//! The checksum that verifies bytes moved by the transfer experiments: FNV-1a over 64-bit
//! little-endian words (the last partial word byte by byte), fed in pieces of any size. Not
//! cryptographic; it catches lost, reordered or corrupted bytes at memory speed.

/// FNV-1a's 64-bit offset basis.
const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// A running checksum: the same result however the input is split.
#[derive(Debug, Clone)]
pub struct Checksum {
    state: u64,
    /// Bytes waiting for a whole word.
    pending: [u8; 8],
    pending_len: usize,
    /// Bytes fed so far.
    bytes: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum { state: OFFSET_BASIS, pending: [0; 8], pending_len: 0, bytes: 0 }
    }
}

impl Checksum {
    /// Feeds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.pending_len > 0 {
            let take = (8 - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.pending_len = 0;
        }
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("chunks_exact yields 8 bytes")));
        }
        let tail = words.remainder();
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }

    /// How many bytes were fed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The checksum of everything fed.
    pub fn finish(&self) -> u64 {
        let mut state = self.state;
        for byte in &self.pending[..self.pending_len] {
            state = (state ^ u64::from(*byte)).wrapping_mul(PRIME);
        }
        state
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(PRIME);
    }
}

/// The checksum of `data` in one go.
pub fn checksum_of(data: &[u8]) -> u64 {
    let mut checksum = Checksum::default();
    checksum.update(data);
    checksum.finish()
}

/// Deterministic printable content: `size` bytes of lines `line_bytes` long (newline included;
/// the last line may be shorter), different for each `seed`. The same `(seed, offset)` always
/// gives the same bytes, so a generator can fill any range.
pub fn fill_lines(seed: u64, offset: u64, line_bytes: u64, buffer: &mut [u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (index, byte) in buffer.iter_mut().enumerate() {
        let position = offset + index as u64;
        *byte = if position % line_bytes == line_bytes - 1 {
            b'\n'
        } else {
            let mixed = (position ^ seed.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ALPHABET[(mixed >> 58) as usize]
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_does_not_change_the_checksum() {
        let mut data = vec![0u8; 1000];
        fill_lines(7, 0, 10, &mut data);
        let whole = checksum_of(&data);
        for piece in [1, 3, 7, 8, 9, 64, 999] {
            let mut checksum = Checksum::default();
            data.chunks(piece).for_each(|chunk| checksum.update(chunk));
            assert_eq!(checksum.finish(), whole, "pieces of {piece}");
            assert_eq!(checksum.bytes(), 1000);
        }
        data[500] ^= 1;
        assert_ne!(checksum_of(&data), whole);
    }

    #[test]
    fn generated_content_is_lines_and_depends_on_seed_and_offset_only() {
        let mut first = vec![0u8; 30];
        fill_lines(1, 0, 10, &mut first);
        assert!(first.split(|byte| *byte == b'\n').take(3).all(|line| line.len() == 9));
        let mut middle = vec![0u8; 10];
        fill_lines(1, 10, 10, &mut middle);
        assert_eq!(&first[10..20], &middle[..]);
        let mut other = vec![0u8; 30];
        fill_lines(2, 0, 10, &mut other);
        assert_ne!(first, other);
    }
}
