//! Element types. f32 is the only one today; sizes and WGSL element types come from here,
//! so a narrower storage type later changes this enum, not arithmetic across the crate.

/// The type of a tensor's elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    #[default]
    F32,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
        }
    }

    /// The WGSL type of an element in storage (`elem` in the shaders).
    pub fn wgsl(self) -> &'static str {
        match self {
            DType::F32 => "f32",
        }
    }
}
