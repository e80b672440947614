//! Request bodies of the Upstash REST protocol: one command is a JSON array of
//! strings and numbers; a pipeline or transaction is a JSON array of those.

use serde_json::Value as Json;

/// One command: its name and arguments as bytes, ready for Redis.
pub type Args = Vec<Vec<u8>>;

/// Parses `["SET","k","v","EX",100]`.
pub fn parse_command(body: &[u8]) -> Result<Args, String> {
    let json = parse_json(body)?;
    command_from_json(&json)
}

/// Parses `[["SET","k","v"],["GET","k"]]`.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Args>, String> {
    let json = parse_json(body)?;
    let Json::Array(items) = json else {
        return Err("ERR the request body must be a JSON array of commands".to_owned());
    };
    if items.is_empty() {
        return Err("ERR the request body must hold at least one command".to_owned());
    }
    items.iter().map(command_from_json).collect()
}

fn parse_json(body: &[u8]) -> Result<Json, String> {
    serde_json::from_slice(body)
        .map_err(|err| format!("ERR failed to parse the request body as JSON: {err}"))
}

fn command_from_json(json: &Json) -> Result<Args, String> {
    const SHAPE: &str = "ERR a command must be a non-empty JSON array of strings and numbers";
    let Json::Array(parts) = json else {
        return Err(SHAPE.to_owned());
    };
    if parts.is_empty() {
        return Err(SHAPE.to_owned());
    }
    parts
        .iter()
        .map(|part| match part {
            Json::String(text) => Ok(text.as_bytes().to_vec()),
            // Numbers become their decimal text, as Upstash does.
            Json::Number(number) => Ok(number.to_string().into_bytes()),
            _ => Err(SHAPE.to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_become_bytes() {
        let args = parse_command(br#"["SET","k","v","EX",100,1.5,-3]"#).unwrap();
        let text: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(
            text,
            [&b"SET"[..], b"k", b"v", b"EX", b"100", b"1.5", b"-3"]
        );
    }

    #[test]
    fn wrong_shapes_are_refused() {
        for body in [
            &b"{}"[..],
            b"[]",
            b"[null]",
            b"[[\"GET\"]]",
            b"[true]",
            b"not json",
            b"",
        ] {
            assert!(
                parse_command(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [&b"[]"[..], b"[\"GET\",\"k\"]", b"[[]]", b"{\"a\":1}"] {
            assert!(
                parse_batch(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse_batch(br#"[["PING"],["GET","k"]]"#).unwrap().len(), 2);
    }
}
