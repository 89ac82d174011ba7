//! Joining the tensors of several requests into one batch along the first axis, and splitting a
//! batch back into per-request parts.
//!
//! The core decides whether requests can share a batch and where each one's rows lie; the copy
//! itself is one contiguous concatenation per tensor, which the caller does with its array
//! library (NumPy's `concatenate`), and the split is a set of views over those row ranges.

use std::fmt;
use std::ops::Range;

/// What the batcher needs to know about one request tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMeta {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

impl TensorMeta {
    pub fn new(name: impl Into<String>, dtype: impl Into<String>, shape: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            dtype: dtype.into(),
            shape,
        }
    }
}

/// Requests that cannot share a batch, or offsets that do not fit one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// The index of the offending request, where one is to blame.
    pub request: Option<usize>,
    pub tensor: String,
    pub message: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.request {
            Some(request) => write!(
                formatter,
                "request {request}, tensor {:?}: {}",
                self.tensor, self.message
            ),
            None => write!(formatter, "tensor {:?}: {}", self.tensor, self.message),
        }
    }
}

impl std::error::Error for BatchError {}

/// Checks that the requests can be concatenated and returns each one's first row in the batch
/// (`requests.len() + 1` offsets; the last is the batch's row count).
///
/// Every request must carry the same tensor names (in any order), each with the same dtype and
/// the same shape after the first axis; within a request, all tensors have the same rows.
pub fn plan_concat(requests: &[Vec<TensorMeta>]) -> Result<Vec<usize>, BatchError> {
    let mut offsets = Vec::with_capacity(requests.len() + 1);
    offsets.push(0);
    let Some(first) = requests.first() else {
        return Ok(offsets);
    };
    let error = |request: usize, tensor: &str, message: String| BatchError {
        request: Some(request),
        tensor: tensor.to_owned(),
        message,
    };
    for (request_index, request) in requests.iter().enumerate() {
        let mut rows = None;
        for tensor in request {
            let Some(&leading) = tensor.shape.first() else {
                return Err(error(
                    request_index,
                    &tensor.name,
                    "a scalar has no rows to batch".into(),
                ));
            };
            let Some(reference) = first.iter().find(|candidate| candidate.name == tensor.name)
            else {
                return Err(error(
                    request_index,
                    &tensor.name,
                    "not present in request 0".into(),
                ));
            };
            if tensor.dtype != reference.dtype {
                return Err(error(
                    request_index,
                    &tensor.name,
                    format!(
                        "dtype {} differs from {} in request 0",
                        tensor.dtype, reference.dtype
                    ),
                ));
            }
            if tensor.shape[1..] != reference.shape[1..] {
                return Err(error(
                    request_index,
                    &tensor.name,
                    format!(
                        "shape {:?} does not match {:?} of request 0 after the first axis",
                        tensor.shape, reference.shape
                    ),
                ));
            }
            match rows {
                None => rows = Some(leading),
                Some(rows) if rows != leading => {
                    return Err(error(
                        request_index,
                        &tensor.name,
                        format!("has {leading} rows where the request's other tensors have {rows}"),
                    ))
                }
                Some(_) => {}
            }
            if request
                .iter()
                .filter(|other| other.name == tensor.name)
                .count()
                > 1
            {
                return Err(error(request_index, &tensor.name, "given twice".into()));
            }
        }
        if let Some(absent) = first
            .iter()
            .find(|reference| !request.iter().any(|tensor| tensor.name == reference.name))
        {
            return Err(error(
                request_index,
                &absent.name,
                "missing (request 0 has it)".into(),
            ));
        }
        let previous = offsets[offsets.len() - 1];
        offsets.push(previous + rows.unwrap_or(0));
    }
    Ok(offsets)
}

/// Checks offsets against a batch of `rows` rows and returns each part's row range.
pub fn split_ranges(
    offsets: &[usize],
    rows: usize,
    tensor: &str,
) -> Result<Vec<Range<usize>>, BatchError> {
    let error = |message: String| BatchError {
        request: None,
        tensor: tensor.to_owned(),
        message,
    };
    match (offsets.first(), offsets.last()) {
        (Some(0), Some(&last)) if last == rows => {}
        _ => {
            return Err(error(format!(
                "offsets must start at 0 and end at the batch's {rows} rows, got {offsets:?}"
            )))
        }
    }
    if let Some(window) = offsets.windows(2).find(|window| window[0] > window[1]) {
        return Err(error(format!(
            "offsets must not decrease, got {} then {}",
            window[0], window[1]
        )));
    }
    Ok(offsets
        .windows(2)
        .map(|window| window[0]..window[1])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(rows: usize) -> Vec<TensorMeta> {
        vec![
            TensorMeta::new("x", "float32", vec![rows, 4]),
            TensorMeta::new("mask", "bool", vec![rows]),
        ]
    }

    #[test]
    fn offsets_accumulate_rows() {
        assert_eq!(
            plan_concat(&[request(2), request(0), request(3)]).unwrap(),
            [0, 2, 2, 5]
        );
        assert_eq!(plan_concat(&[]).unwrap(), [0]);
    }

    #[test]
    fn names_are_matched_in_any_order() {
        let mut reversed = request(1);
        reversed.reverse();
        assert_eq!(plan_concat(&[request(1), reversed]).unwrap(), [0, 1, 2]);
    }

    #[test]
    fn mismatches_name_the_request_and_tensor() {
        let mut wrong_dtype = request(1);
        wrong_dtype[0].dtype = "float64".into();
        let error = plan_concat(&[request(1), wrong_dtype]).unwrap_err();
        assert_eq!((error.request, error.tensor.as_str()), (Some(1), "x"));

        let mut wrong_shape = request(1);
        wrong_shape[0].shape = vec![1, 5];
        assert!(plan_concat(&[request(1), wrong_shape])
            .unwrap_err()
            .message
            .contains("shape"));

        let mut missing = request(1);
        missing.pop();
        let error = plan_concat(&[request(1), request(1), missing]).unwrap_err();
        assert_eq!((error.request, error.tensor.as_str()), (Some(2), "mask"));

        let mut extra = request(1);
        extra.push(TensorMeta::new("y", "int64", vec![1]));
        assert_eq!(plan_concat(&[request(1), extra]).unwrap_err().tensor, "y");

        let mut ragged = request(2);
        ragged[1].shape = vec![3];
        assert!(plan_concat(&[ragged]).unwrap_err().message.contains("rows"));
    }

    #[test]
    fn split_ranges_checks_offsets() {
        assert_eq!(
            split_ranges(&[0, 2, 2, 5], 5, "x").unwrap(),
            [0..2, 2..2, 2..5]
        );
        assert!(split_ranges(&[0, 3, 2, 5], 5, "x").is_err());
        assert!(split_ranges(&[0, 2], 5, "x").is_err());
        assert!(split_ranges(&[1, 5], 5, "x").is_err());
        assert!(split_ranges(&[], 0, "x").is_err());
    }
}
