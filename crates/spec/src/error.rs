use serde::Serialize;

/// One thing wrong with a spec, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON pointer into the document as the user wrote it ("" is the root).
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the spec is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the spec has {} problem(s); first: {}", .0.len(), .0.first().map(|p| p.message.as_str()).unwrap_or(""))]
    Invalid(Vec<Problem>),
}

impl SpecError {
    pub fn single(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![Problem {
            pointer: pointer.into(),
            message: message.into(),
        }])
    }

    /// The problems to show a user, whatever the kind of error.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::TooLarge { .. } => vec![Problem {
                pointer: String::new(),
                message: self.to_string(),
            }],
            Self::Invalid(problems) => problems.clone(),
        }
    }
}
