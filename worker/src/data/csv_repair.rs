//! CSV files with broken lines, for an extract whose output a contract
//! checks: each record with the wrong number of fields or bytes that are not
//! UTF-8 is set aside with what is wrong and where, the others are rewritten
//! with their row number, so validate quarantines the broken lines (reason
//! `corrupt`) instead of the whole extract failing. Runs only after a plain
//! read failed: whole files cost nothing extra.

use std::path::Path;

use weir_core::dag::CsvOptions;

use super::DataError;

/// The column of a raw dataset that says why a line was broken.
pub const CORRUPT: &str = "_weir_corrupt";

/// The column of a rewritten file that holds each record's row number.
pub const ROW: &str = "__weir_row";

/// A line set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The record's number among the file's rows, from 1 (as `_weir_row`).
    pub row: i64,
    /// What is wrong, with the line number.
    pub detail: String,
}

/// Rewrites `src` into `dst` without its broken records (plus the `ROW`
/// column); returns the header and the records set aside.
pub fn repair(
    src: &Path,
    dst: &Path,
    options: &CsvOptions,
) -> Result<(Vec<String>, Vec<Broken>), DataError> {
    let shown = src.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(options.delimiter)
        .quote(options.quote)
        .flexible(true)
        .from_path(src)
        .map_err(|e| DataError::Invalid(format!("reading {shown}: {e}")))?;
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| DataError::Invalid(format!("reading {shown}: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let mut writer = csv::WriterBuilder::new()
        .delimiter(options.delimiter)
        .quote(options.quote)
        .from_path(dst)
        .map_err(|e| DataError::Invalid(format!("writing {}: {e}", dst.display())))?;
    let write_err = |e: csv::Error| DataError::Invalid(format!("writing {}: {e}", dst.display()));
    writer
        .write_record(header.iter().map(String::as_str).chain([ROW]))
        .map_err(write_err)?;
    let mut broken = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut row = 0i64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(DataError::Invalid(format!("reading {shown}: {e}")));
            }
        }
        row += 1;
        let line = record.position().map_or(0, |p| p.line());
        let problem = if record.len() != header.len() {
            Some(format!(
                "line {line}: {} field(s), the header has {}",
                record.len(),
                header.len()
            ))
        } else if record.iter().any(|f| std::str::from_utf8(f).is_err()) {
            Some(format!("line {line}: not valid UTF-8"))
        } else {
            None
        };
        match problem {
            Some(detail) => broken.push(Broken { row, detail }),
            None => {
                let number = row.to_string();
                writer
                    .write_record(record.iter().chain([number.as_bytes()]))
                    .map_err(write_err)?;
            }
        }
    }
    writer
        .flush()
        .map_err(|e| DataError::Invalid(format!("writing {}: {e}", dst.display())))?;
    Ok((header, broken))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn broken_lines_are_set_aside_with_their_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.csv");
        let mut text = b"id,name\n1,a\n2,b,extra\n3\n".to_vec();
        text.extend_from_slice(b"4,\xff\xfe\n5,\"quoted, with comma\"\n");
        std::fs::write(&src, text).unwrap();
        let dst = dir.path().join("out.csv");
        let options = CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            null_values: vec![],
        };
        let (header, broken) = repair(&src, &dst, &options).unwrap();
        assert_eq!(header, ["id", "name"]);
        assert_eq!(
            broken,
            [
                Broken {
                    row: 2,
                    detail: "line 3: 3 field(s), the header has 2".into()
                },
                Broken {
                    row: 3,
                    detail: "line 4: 1 field(s), the header has 2".into()
                },
                Broken {
                    row: 4,
                    detail: "line 5: not valid UTF-8".into()
                },
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "id,name,__weir_row\n1,a,1\n5,\"quoted, with comma\",5\n"
        );
    }
}
