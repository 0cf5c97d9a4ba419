//! Decoding what callers send: orchestrator inputs and event payloads.
//!
//! Some Durable Functions clients encode a value twice: the Python client's
//! `start_new(name, id, 0)` sends the JSON string `"0"`, and its
//! `raise_event` does the same with every payload. Durable Functions' own
//! orchestrators accept this because their JSON library converts the
//! string. Here the orchestrator says which type it wants, so the decision
//! needs no guessing: when the value does not fit that type and is a JSON
//! string, the string's content is decoded instead. A caller who sends a
//! string to a `String` gets the string, unchanged.

use serde::de::DeserializeOwned;

/// `json` decoded as `T`; if it does not fit and is a JSON string whose
/// content does, that content. The error is always the first attempt's.
pub(crate) fn decode<T: DeserializeOwned>(json: &str) -> serde_json::Result<T> {
    let error = match serde_json::from_str(json) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match serde_json::from_str::<String>(json) {
        Ok(inner) => serde_json::from_str(&inner).map_err(|_| error),
        Err(_) => Err(error),
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
        assert_eq!(decode::<String>(r#""\"x\"""#).unwrap(), r#""x""#);
        assert_eq!(
            decode::<serde_json::Value>(r#""5""#).unwrap(),
            serde_json::Value::String("5".into())
        );
    }

    #[test]
    fn a_value_encoded_twice_decodes_to_the_type_asked_for() {
        assert_eq!(decode::<i64>(r#""0""#).unwrap(), 0);
        assert_eq!(decode::<Option<i64>>(r#""7""#).unwrap(), Some(7));
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
