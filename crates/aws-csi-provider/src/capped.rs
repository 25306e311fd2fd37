//! A YAML/JSON list that holds at most [`Capped::LIMIT`] items and counts the rest without
//! keeping them, so that a list of 20,000 objects costs the memory of 1,000 and the error can
//! still say how many there were.

use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Items held (the rest are only counted) and how many the list had in all.
#[derive(Debug)]
pub struct Capped<T> {
    pub items: Vec<T>,
    pub total: usize,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

impl<T> Capped<T> {
    /// Items held at most: the per-mount file limit (more is an error anyway).
    pub const LIMIT: usize = crate::objects::MAX_FILES;
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
            type Value = Capped<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Capped::default();
                loop {
                    if out.items.len() < Capped::<T>::LIMIT {
                        match seq.next_element::<T>()? {
                            Some(item) => out.items.push(item),
                            None => break,
                        }
                    } else if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                    out.total += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(List(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_the_limit_and_counts_all() {
        let n = Capped::<u32>::LIMIT + 5;
        let yaml: String = (0..n).map(|i| format!("- {i}\n")).collect();
        let c: Capped<u32> = serde_saphyr::from_str(&yaml).expect("list");
        assert_eq!(c.total, n);
        assert_eq!(c.items.len(), Capped::<u32>::LIMIT);
        let c: Capped<u32> = serde_saphyr::from_str("[1, 2]").expect("list");
        assert_eq!((c.items, c.total), (vec![1, 2], 2));
        assert!(serde_saphyr::from_str::<Capped<u32>>("a: 1").is_err());
    }
}
