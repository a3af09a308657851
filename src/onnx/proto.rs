//! Small builders and readers over the ONNX protobuf types (`generated.rs`, prost's code for
//! the published `onnx.proto`): attributes, tensors and value infos.

use super::generated::attribute_proto::AttributeType;
use super::generated::tensor_proto::DataType;
use super::generated::tensor_shape_proto::{dimension, Dimension};
use super::generated::{
    type_proto, AttributeProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::shape::{Dim, Shape};
use crate::{Error, Result};

/// The name ONNX files give the batch axis.
pub(crate) const BATCH: &str = "batch";
/// The name of the first sequence axis in exported shapes (`seq1`, `seq2`, .. for the others).
pub(crate) const SEQ: &str = "seq";

/// An attribute value to write.
pub(crate) enum Attr {
    /// One integer.
    Int(i64),
    /// Integers.
    Ints(Vec<i64>),
    /// A tensor (`Constant`'s value).
    Tensor(Box<TensorProto>),
    /// A string (a recurrence's `direction`).
    Str(&'static str),
}

/// A node `op_type(inputs) → outputs` with its attributes.
pub(crate) fn node(
    op_type: &str,
    name: String,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<(&str, Attr)>,
) -> NodeProto {
    let mut n = NodeProto {
        op_type: Some(op_type.into()),
        name: Some(name),
        ..NodeProto::default()
    };
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    for (key, value) in attrs {
        let mut a = AttributeProto {
            name: Some(key.into()),
            ..AttributeProto::default()
        };
        let kind = match value {
            Attr::Int(i) => {
                a.i = Some(i);
                AttributeType::Int
            }
            Attr::Ints(v) => {
                a.ints = v;
                AttributeType::Ints
            }
            Attr::Tensor(t) => {
                a.t = Some(*t);
                AttributeType::Tensor
            }
            Attr::Str(v) => {
                a.s = Some(v.as_bytes().to_vec());
                AttributeType::String
            }
        };
        a.r#type = Some(kind as i32);
        n.attribute.push(a);
    }
    n
}

/// A float tensor (an initializer).
pub(crate) fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(DataType::Float as i32),
        dims: dims.iter().map(|&d| d as i64).collect(),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// A 1-D int64 tensor (shapes, axes, slice bounds).
pub(crate) fn int_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(DataType::Int64 as i32),
        dims: vec![values.len() as i64],
        int64_data: values.to_vec(),
        ..TensorProto::default()
    }
}

/// A float tensor's value info, the batch axis named [`BATCH`], sequence axes [`SEQ`].
pub(crate) fn value_info(name: &str, shape: &Shape) -> Result<ValueInfoProto> {
    let mut dims = TensorShapeProto::default();
    for d in &shape.0 {
        let value = match *d {
            Dim::Fixed(n) => dimension::Value::DimValue(n as i64),
            Dim::Batch => dimension::Value::DimParam(BATCH.into()),
            Dim::Seq(0) => dimension::Value::DimParam(SEQ.into()),
            Dim::Seq(k) => dimension::Value::DimParam(format!("{SEQ}{k}")),
        };
        dims.dim.push(Dimension {
            value: Some(value),
            denotation: None,
        });
    }
    let tensor = type_proto::Tensor {
        elem_type: Some(DataType::Float as i32),
        shape: Some(dims),
    };
    Ok(ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    })
}

/// The float values of a tensor (raw or typed data), checked against its dims.
pub(crate) fn floats(t: &TensorProto) -> Result<Vec<f32>> {
    let n = element_count(t)?;
    let raw = t.raw_data.as_deref().unwrap_or_default();
    let values: Vec<f32> = match data_type(t) {
        Some(DataType::Float) if !raw.is_empty() => {
            if raw.len() != 4 * n {
                return Err(bad_tensor(t, "raw data of the wrong length"));
            }
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        Some(DataType::Float) => t.float_data.clone(),
        Some(DataType::Double) if raw.is_empty() => {
            t.double_data.iter().map(|&v| v as f32).collect()
        }
        Some(DataType::Int64 | DataType::Int32) => ints(t)?.iter().map(|&v| v as f32).collect(),
        _ => return Err(bad_tensor(t, "an element type other than float or int64")),
    };
    if values.len() != n {
        return Err(bad_tensor(t, "a value count that does not match its dims"));
    }
    Ok(values)
}

/// The int64 values of a tensor (raw or typed data).
pub(crate) fn ints(t: &TensorProto) -> Result<Vec<i64>> {
    let n = element_count(t)?;
    let raw = t.raw_data.as_deref().unwrap_or_default();
    let values: Vec<i64> = match data_type(t) {
        Some(DataType::Int64) if !raw.is_empty() => {
            if raw.len() != 8 * n {
                return Err(bad_tensor(t, "raw data of the wrong length"));
            }
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        }
        Some(DataType::Int64) => t.int64_data.clone(),
        Some(DataType::Int32) if !raw.is_empty() => {
            if raw.len() != 4 * n {
                return Err(bad_tensor(t, "raw data of the wrong length"));
            }
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect()
        }
        Some(DataType::Int32) => t.int32_data.iter().map(|&v| v as i64).collect(),
        _ => return Err(bad_tensor(t, "an element type other than int64")),
    };
    if values.len() != n {
        return Err(bad_tensor(t, "a value count that does not match its dims"));
    }
    Ok(values)
}

/// A tensor's dims as sizes.
pub(crate) fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad_tensor(t, "a negative dim")))
        .collect()
}

fn data_type(t: &TensorProto) -> Option<DataType> {
    DataType::try_from(t.data_type?).ok()
}

fn element_count(t: &TensorProto) -> Result<usize> {
    dims(t)?
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n < 1 << 32)
        .ok_or_else(|| bad_tensor(t, "2^32 or more elements"))
}

fn bad_tensor(t: &TensorProto, what: &str) -> Error {
    Error::Invalid(format!(
        "onnx: tensor '{}' (dims {:?}) has {what}",
        t.name(),
        t.dims
    ))
}

/// An attribute of a node, by name.
pub(crate) fn attr<'a>(n: &'a NodeProto, key: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name() == key)
}

/// An integer attribute, or `default`.
pub(crate) fn attr_int(n: &NodeProto, key: &str, default: i64) -> i64 {
    attr(n, key).map_or(default, |a| a.i())
}

/// A float attribute, or `default`.
pub(crate) fn attr_float(n: &NodeProto, key: &str, default: f32) -> f32 {
    attr(n, key).map_or(default, |a| a.f())
}

/// An integer-list attribute, or `None`.
pub(crate) fn attr_ints(n: &NodeProto, key: &str) -> Option<Vec<i64>> {
    attr(n, key).map(|a| a.ints.clone())
}

/// A string attribute, or `default`.
pub(crate) fn attr_string(n: &NodeProto, key: &str, default: &str) -> String {
    attr(n, key).map_or(default.into(), |a| {
        String::from_utf8_lossy(a.s()).into_owned()
    })
}
