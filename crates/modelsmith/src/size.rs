//! Sizes read from files (IDX headers, `model.json`, model specs) are multiplied here, checked:
//! a product past 2^64 is `None`, never a wrapped number that looks small.

/// The product of `dims` as a `u64`, or `None` if it overflows.
pub(crate) fn checked_product(dims: &[usize]) -> Option<u64> {
    dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_overflow_to_none() {
        assert_eq!(checked_product(&[]), Some(1));
        assert_eq!(checked_product(&[28, 28, 1]), Some(784));
        assert_eq!(checked_product(&[4, 1 << 31, 1 << 31]), None);
    }
}
