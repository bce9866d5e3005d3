//! `multipart/form-data` (RFC 7578), as a page's form sends a file: the parts split at the
//! boundary, each with its field name, its file name when it is a file, and its bytes. Only
//! what a browser sends is read; a body that is not that shape is refused, never guessed at.

/// One part of a form post.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Part {
    /// The form field's name.
    pub name: String,
    /// The file's name, for a file input (empty when no file was chosen).
    pub filename: Option<String>,
    /// The value, or the file's bytes.
    pub bytes: Vec<u8>,
}

/// The boundary a `Content-Type` of `multipart/form-data` declares.
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// A header parameter (`name="summary"`) of a `Content-Disposition` line.
fn parameter(line: &str, key: &str) -> Option<String> {
    line.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        k.trim().eq_ignore_ascii_case(key).then(|| v.replace("\\\"", "\""))
    })
}

/// The parts of a body sent with `boundary`.
pub(super) fn parts(body: &[u8], boundary: &str) -> Result<Vec<Part>, &'static str> {
    let open = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    if !body.starts_with(open.as_bytes()) {
        return Err("the form's body does not start with its boundary");
    }
    let mut at = open.len();
    let mut out = Vec::new();
    loop {
        match body.get(at..at + 2) {
            Some(b"--") => return Ok(out),
            Some(b"\r\n") => at += 2,
            _ => return Err("a boundary is not followed by a line break"),
        }
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part has no end to its headers")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "a part's headers are not UTF-8")?;
        let disposition = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or("a part has no Content-Disposition")?;
        let name = parameter(disposition, "name").ok_or("a part has no name")?;
        let filename = parameter(disposition, "filename");
        let start = head_end + 4;
        let end = find(body, between.as_bytes(), start).ok_or("the form's body ends inside a part")?;
        out.push(Part { name, filename, bytes: body[start..end].to_vec() });
        at = end + between.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_form_with_a_file_splits_into_its_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"summary\"\r\n\r\n\xe5\xb7\xb2\xe5\x9b\x9e\xe8\xae\xbf\r\nline 2\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"attachment\"; filename=\"\xe7\x85\xa7\xe7\x89\x87.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n--\r\n--XyZ--\r\n";
        let got = parts(body, "XyZ").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].name.as_str(), got[0].bytes.as_slice()), ("csrf", &b"abc"[..]));
        assert_eq!(String::from_utf8(got[1].bytes.clone()).unwrap(), "已回访\r\nline 2");
        assert_eq!(got[2].filename.as_deref(), Some("照片.png"));
        assert_eq!(got[2].bytes, b"\x89PNG\r\n\x1a\n--");
    }

    #[test]
    fn a_body_that_is_not_a_form_is_refused_not_guessed() {
        for bad in [
            &b"hello"[..],
            b"--XyZ",
            b"--XyZ\r\nno headers end",
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end",
        ] {
            assert!(parts(bad, "XyZ").is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(boundary("multipart/form-data; boundary=\"a b\""), Some("a b".into()));
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
    }
}
