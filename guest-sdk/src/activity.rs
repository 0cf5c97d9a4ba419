//! Running an activity function for the host: JSON in, JSON or an error out.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `input`, runs `function`, encodes its output.
pub fn run_activity<F, T, U, E>(function: F, input: &str) -> Result<String, String>
where
    F: FnOnce(T) -> Result<U, E>,
    T: DeserializeOwned,
    U: Serialize,
    E: std::fmt::Display,
{
    let input: T = serde_json::from_str(input).map_err(|error| {
        format!("the activity's input does not have the expected shape: {error}")
    })?;
    let output = function(input).map_err(|error| error.to_string())?;
    serde_json::to_string(&output)
        .map_err(|error| format!("the activity's output is not valid JSON: {error}"))
}
