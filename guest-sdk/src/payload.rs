//! Decoding what callers send: orchestrator inputs and event payloads.
//!
//! Some Durable Functions clients encode a value twice: the Python client's
//! `start_new(name, id, 0)` sends the JSON string `"0"`, and its
//! `raise_event(id, name, "incr")` sends `"\"incr\""`. Durable Functions'
//! own orchestrators accept this because their JSON library converts the
//! string. Here the orchestrator says which type it wants, so the decision
//! needs no guessing from the request:
//!
//! - a JSON string whose content is itself one JSON string is a string
//!   encoded twice: it is decoded from its content (`"\"incr\""` is
//!   `incr`);
//! - otherwise, when the value does not fit the type asked for and is a
//!   JSON string whose content does, that content is decoded (`"0"` is `0`
//!   for an `i64`);
//!   The content is read as a request body is, so an empty one is `null`:
//!   the JavaScript client sends `""` when a start has no input;
//! - so a caller who sends a string to a `String` gets the string, `"0"`
//!   stays `"0"` and `""` stays `""`.

use serde::de::DeserializeOwned;

/// `json` decoded as `T`, undoing a second encoding as described above.
/// The error is always the first attempt's.
pub(crate) fn decode<T: DeserializeOwned>(json: &str) -> serde_json::Result<T> {
    let content = serde_json::from_str::<String>(json).ok();
    if let Some(content) = &content
        && serde_json::from_str::<String>(content).is_ok()
        && let Ok(value) = serde_json::from_str(content)
    {
        return Ok(value);
    }
    let error = match serde_json::from_str(json) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match content {
        // Decoded as a request body is: empty is `null`.
        Some(content) if content.trim().is_empty() => {
            serde_json::from_str("null").map_err(|_| error)
        }
        Some(content) => serde_json::from_str(&content).map_err(|_| error),
        None => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::decode;

    #[test]
    fn values_that_fit_decode_as_sent() {
        assert_eq!(decode::<i64>("0").unwrap(), 0);
        assert_eq!(decode::<Option<i64>>("null").unwrap(), None);
        assert_eq!(decode::<String>(r#""incr""#).unwrap(), "incr");
    }

    #[test]
    fn a_string_asked_for_as_a_string_stays_the_string() {
        assert_eq!(decode::<String>(r#""0""#).unwrap(), "0");
        assert_eq!(decode::<String>(r#""[1]""#).unwrap(), "[1]");
        assert_eq!(
            decode::<serde_json::Value>(r#""5""#).unwrap(),
            serde_json::Value::String("5".into())
        );
    }

    #[test]
    fn a_string_encoded_twice_is_the_string() {
        assert_eq!(decode::<String>(r#""\"incr\"""#).unwrap(), "incr");
        assert_eq!(
            decode::<serde_json::Value>(r#""\"incr\"""#).unwrap(),
            serde_json::Value::String("incr".into())
        );
        assert_eq!(
            decode::<Option<String>>(r#""\"https://example.com\"""#).unwrap(),
            Some("https://example.com".to_owned())
        );
    }

    #[test]
    fn a_value_encoded_twice_decodes_to_the_type_asked_for() {
        assert_eq!(decode::<i64>(r#""0""#).unwrap(), 0);
        assert_eq!(decode::<Option<i64>>(r#""7""#).unwrap(), Some(7));
        assert_eq!(decode::<Option<i64>>(r#""""#).unwrap(), None);
        assert_eq!(decode::<String>(r#""""#).unwrap(), "");
        assert_eq!(
            decode::<Vec<String>>(r#""[\"Tokyo\",\"London\"]""#).unwrap(),
            ["Tokyo", "London"]
        );
        let map: BTreeMap<String, u8> = decode(r#""{\"a\":1}""#).unwrap();
        assert_eq!(map["a"], 1);
    }

    #[test]
    fn what_fits_neither_way_reports_the_first_error() {
        let error = decode::<i64>(r#""seven""#).unwrap_err().to_string();
        assert!(error.contains("invalid type: string \"seven\""), "{error}");
        let error = decode::<i64>("[1]").unwrap_err().to_string();
        assert!(error.contains("invalid type: sequence"), "{error}");
    }
}
