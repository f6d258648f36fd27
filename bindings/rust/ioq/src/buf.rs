//! Buffers that operations own while the kernel may use them.

/// A buffer an operation can read from (send, write).
///
/// # Safety
/// `stable_ptr` must point at `bytes_init` initialized bytes that stay valid and in place
/// while the value is alive and not accessed mutably, even when the value itself is moved
/// into a `Box` (ioq boxes every buffer before it takes its address, except `Vec<u8>`,
/// whose bytes are on the heap and stay where they are when the `Vec` moves).
pub unsafe trait IoBuf: 'static {
    fn stable_ptr(&self) -> *const u8;
    /// Bytes that are initialized (what a send sends).
    fn bytes_init(&self) -> usize;
    /// Bytes that may be written (what a receive may fill).
    fn bytes_total(&self) -> usize;
}

/// A buffer an operation can write into (recv, read).
///
/// # Safety
/// `stable_mut_ptr` must point at `bytes_total` writable bytes, with the rules of
/// [`IoBuf`]; `set_init(n)` is called after the kernel wrote the first `n` bytes.
pub unsafe trait IoBufMut: IoBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// # Safety
    /// The first `n` bytes (n <= bytes_total) are initialized.
    unsafe fn set_init(&mut self, n: usize);
}

/// A `Vec<u8>` sends its `len` bytes and receives into its whole capacity; after a
/// receive its length is the number of bytes received.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.set_len(n);
    }
}

/// A boxed slice is always fully initialized; a receive reports how much it filled.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

/// ioq boxes a buffer before taking its address, so even an array stays in place.
unsafe impl<const N: usize> IoBuf for [u8; N] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        N
    }
    fn bytes_total(&self) -> usize {
        N
    }
}

unsafe impl<const N: usize> IoBufMut for [u8; N] {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_receives_into_capacity_and_sends_its_length() {
        let mut v: Vec<u8> = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!((v.bytes_init(), v.bytes_total()), (3, v.capacity()));
        unsafe { v.set_init(2) };
        assert_eq!(v, b"ab");
        let b: Box<[u8]> = vec![0u8; 8].into_boxed_slice();
        assert_eq!((b.bytes_init(), b.bytes_total()), (8, 8));
        assert_eq!([0u8; 5].bytes_total(), 5);
    }

    #[test]
    fn boxing_keeps_the_address() {
        let v = vec![1u8, 2, 3];
        let p = v.stable_ptr();
        let boxed: Box<dyn std::any::Any> = Box::new(v);
        let back: Box<Vec<u8>> = boxed.downcast().unwrap();
        assert_eq!(back.stable_ptr(), p);
    }
}
