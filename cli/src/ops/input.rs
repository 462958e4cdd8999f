//! JSON Lines input: a file or stdin, read with line numbers.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::error::{OpsError, Result};

/// The non-blank lines of `path` (`-` or `None`: stdin), with their
/// 1-based line numbers.
pub fn read_lines(path: Option<&Path>) -> Result<Vec<(usize, String)>> {
    let (name, reader): (String, Box<dyn Read>) = match path {
        None => ("stdin".to_owned(), Box::new(std::io::stdin())),
        Some(p) if p == Path::new("-") => ("stdin".to_owned(), Box::new(std::io::stdin())),
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| OpsError::io(p.display(), e))?;
            (p.display().to_string(), Box::new(f))
        }
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| OpsError::io(&name, format!("line {}: {e}", i + 1)))?;
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    Ok(out)
}
