//! PostgreSQL reads by `COPY (query) TO STDOUT` (issue #7: "COPY in and out"): the
//! server streams rows in its text format, parsed here into `CopyRow`s that the same
//! row mappers read as they read a `PgRow`, without sqlx's per-value decoding.
//!
//! Only reads on a connection of their own use this (`Store::fetch_mapped`), and a
//! failed one closes that connection: sqlx 0.8's `copy_out_raw` does not read the
//! server's ReadyForQuery after an error that comes before the first row, which leaves
//! the connection a reply behind the server. Reads inside a transaction stay on sqlx's
//! extended protocol, since a transaction's connection cannot be discarded on its own.
//!
//! `COPY` takes no bound parameters, so the query's `$N` are replaced by literals:
//! integers as digits, text as an `E'…'` string with `\` and `'` escaped, which means
//! the same whatever `standard_conforming_strings` is. The output carries a header line
//! (`HEADER`, PostgreSQL 15 and later) so columns are found by name, as elsewhere.

use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::StoreResult;
use futures_util::StreamExt as _;
use std::borrow::Cow;

/// `sql` as a `COPY … TO STDOUT` statement with `values` written in for `$1..$n`.
///
/// One pass over the query text, so a value is never searched again: a text value that
/// itself holds `$1` stays inside its literal (replacing placeholder by placeholder would
/// have substituted into it).
pub(crate) fn copy_statement(sql: &str, values: &[SqlValue]) -> String {
    let mut query = String::with_capacity(sql.len() + 32 * values.len());
    let mut used = vec![false; values.len()];
    let mut rest = sql;
    while let Some(dollar) = rest.find('$') {
        query.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number: usize = after[..digits].parse().unwrap_or(0);
        assert!(
            (1..=values.len()).contains(&number),
            "a placeholder ${} without a value in {sql}",
            &after[..digits]
        );
        query.push_str(&literal(&values[number - 1]));
        used[number - 1] = true;
        rest = &after[digits..];
    }
    query.push_str(rest);
    if let Some(unused) = used.iter().position(|used| !used) {
        panic!("${} is not in the query {sql}", unused + 1);
    }
    format!("COPY ({query}) TO STDOUT WITH (FORMAT text, HEADER true)")
}

/// A value as an SQL literal.
fn literal(value: &SqlValue) -> String {
    match value {
        // In parentheses when negative, so `a-$1` cannot become the comment `a--5`;
        // cast, so arithmetic stays 64-bit as a bound value's would.
        SqlValue::Int(number) if *number < 0 => format!("({number}::BIGINT)"),
        SqlValue::Int(number) => format!("{number}::BIGINT"),
        SqlValue::NullInt | SqlValue::NullText => "NULL".to_string(),
        SqlValue::Text(text) => {
            let mut quoted = String::with_capacity(text.len() + 4);
            quoted.push_str("E'");
            for character in text.chars() {
                match character {
                    '\\' => quoted.push_str("\\\\"),
                    '\'' => quoted.push_str("''"),
                    // PostgreSQL text never holds NUL; one here is a bug, not data.
                    '\0' => panic!("a text value to query by holds NUL"),
                    other => quoted.push(other),
                }
            }
            quoted.push('\'');
            quoted
        }
    }
}

/// Runs `statement` (from `copy_statement`) and maps each row, in order.
pub(crate) async fn copy_out_mapped<T>(
    connection: &mut sqlx::PgConnection,
    statement: &str,
    mut map: impl FnMut(&dyn PlainRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stream = connection.copy_out_raw(statement).await?;
    let mut rows = CopyRows::default();
    let mut mapped = Vec::new();
    // The stream must be read to its end, or the connection is left mid-COPY: a row
    // the mapper refuses is kept as the error and the rest is drained.
    // The same for output that does not parse: the first error is kept.
    let mut refused: Option<crate::store::StoreError> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if refused.is_some() {
            continue;
        }
        let parsed = rows.push_bytes(&chunk, &mut |row| {
            if refused.is_none() {
                match map(row) {
                    Ok(value) => mapped.push(value),
                    Err(error) => refused = Some(error),
                }
            }
        });
        if let Err(error) = parsed {
            refused.get_or_insert(error.into());
        }
    }
    if refused.is_none() {
        rows.finish()?;
    }
    match refused {
        Some(error) => Err(error),
        None => Ok(mapped),
    }
}

/// Splits COPY text output into rows; the first row is the header.
#[derive(Default)]
struct CopyRows {
    /// Bytes of a row not yet ended by `\n`.
    partial: Vec<u8>,
    column_names: Option<Vec<String>>,
}

impl CopyRows {
    fn push_bytes(
        &mut self,
        mut bytes: &[u8],
        each: &mut dyn FnMut(&CopyRow<'_>),
    ) -> Result<(), sqlx::Error> {
        while let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
            let (line, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            if self.partial.is_empty() {
                self.row(line, each)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.row(&whole, each)?;
            }
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn row(&mut self, line: &[u8], each: &mut dyn FnMut(&CopyRow<'_>)) -> Result<(), sqlx::Error> {
        let values = split_row(line)?;
        match &self.column_names {
            None => {
                let names = values
                    .into_iter()
                    .map(|name| name.map(Cow::into_owned))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| protocol("a NULL in the header"))?;
                self.column_names = Some(names);
            }
            Some(names) => {
                if values.len() != names.len() {
                    return Err(protocol("a row with another number of columns"));
                }
                each(&CopyRow {
                    column_names: names,
                    values,
                    next_column: std::cell::Cell::new(0),
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), sqlx::Error> {
        if !self.partial.is_empty() {
            return Err(protocol("output that ends inside a row"));
        }
        Ok(())
    }
}

fn protocol(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("COPY text output: {what}"))
}

/// One row's values, unescaped; `None` is SQL NULL (`\N`).
fn split_row(line: &[u8]) -> Result<Vec<Option<Cow<'_, str>>>, sqlx::Error> {
    line.split(|&byte| byte == b'\t')
        .map(|field| {
            if field == b"\\N" {
                return Ok(None);
            }
            let text = if field.contains(&b'\\') {
                Cow::Owned(unescape(field)?)
            } else {
                Cow::Borrowed(field)
            };
            match text {
                Cow::Borrowed(bytes) => std::str::from_utf8(bytes).map(Cow::Borrowed),
                Cow::Owned(bytes) => String::from_utf8(bytes)
                    .map(Cow::Owned)
                    .map_err(|error| error.utf8_error()),
            }
            .map(Some)
            .map_err(|_| protocol("a value that is not UTF-8"))
        })
        .collect()
}

/// The text format's backslash sequences (the server writes `\\`, `\t`, `\n`, `\r`,
/// `\b`, `\f`, `\v`; octal and `\x` are read too, as the format allows them).
fn unescape(field: &[u8]) -> Result<Vec<u8>, sqlx::Error> {
    let mut out = Vec::with_capacity(field.len());
    let mut position = 0;
    while position < field.len() {
        let byte = field[position];
        position += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let escaped = *field
            .get(position)
            .ok_or_else(|| protocol("a value that ends in a backslash"))?;
        position += 1;
        match escaped {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let digits = field[position - 1..]
                    .iter()
                    .take(3)
                    .take_while(|digit| (b'0'..=b'7').contains(*digit))
                    .count();
                let text = std::str::from_utf8(&field[position - 1..position - 1 + digits])
                    .expect("octal digits are ASCII");
                let value = u16::from_str_radix(text, 8).expect("octal digits parse");
                out.push((value & 0xff) as u8);
                position += digits - 1;
            }
            b'x' => {
                let digits = field[position..]
                    .iter()
                    .take(2)
                    .take_while(|digit| digit.is_ascii_hexdigit())
                    .count();
                if digits == 0 {
                    out.push(b'x');
                } else {
                    let text = std::str::from_utf8(&field[position..position + digits])
                        .expect("hex digits are ASCII");
                    out.push(u8::from_str_radix(text, 16).expect("hex digits parse"));
                    position += digits;
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// One row of COPY output, read by column name.
struct CopyRow<'a> {
    column_names: &'a [String],
    values: Vec<Option<Cow<'a, str>>>,
    /// Where the next column is likely to be: mappers read columns in order.
    next_column: std::cell::Cell<usize>,
}

impl CopyRow<'_> {
    fn value(&self, column: &str) -> Result<Option<&str>, sqlx::Error> {
        let count = self.column_names.len();
        let start = self.next_column.get();
        let index = (0..count)
            .map(|offset| (start + offset) % count.max(1))
            .find(|&index| self.column_names[index] == column)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_string()))?;
        self.next_column.set(index + 1);
        Ok(self.values[index].as_deref())
    }

    fn required(&self, column: &str) -> Result<&str, sqlx::Error> {
        self.value(column)?
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: column.to_string(),
                source: "unexpected NULL".into(),
            })
    }
}

fn parse_int(column: &str, text: &str) -> Result<i64, sqlx::Error> {
    text.parse().map_err(|error| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(error),
    })
}

impl PlainRow for CopyRow<'_> {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.required(column).map(str::to_string)
    }

    fn with_text(&self, column: &str, read: &mut dyn FnMut(&str)) -> Result<(), sqlx::Error> {
        read(self.required(column)?);
        Ok(())
    }

    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        parse_int(column, self.required(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        Ok(self.value(column)?.map(str::to_string))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.value(column)?
            .map(|text| parse_int(column, text))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bulk::copy_text_row;
    use proptest::prelude::*;

    fn read_back(bytes: &[u8], split_at: usize) -> Vec<Vec<Option<String>>> {
        let mut rows = CopyRows::default();
        let mut read = Vec::new();
        let (first, second) = bytes.split_at(split_at.min(bytes.len()));
        for part in [first, second] {
            rows.push_bytes(part, &mut |row| {
                read.push(
                    row.values
                        .iter()
                        .map(|v| v.as_deref().map(str::to_string))
                        .collect(),
                )
            })
            .expect("well-formed output");
        }
        rows.finish().expect("ends on a row boundary");
        read
    }

    #[test]
    fn literals_cannot_break_out_of_their_quotes() {
        let statement = copy_statement(
            "SELECT * FROM t WHERE a = $1 AND b > $2 AND c = $10 AND d IN ($4, $5, $6, $7, $8, $9) LIMIT $3",
            &[
                SqlValue::Text("x' OR '1'='1 \\' --".into()),
                SqlValue::Int(-7),
                SqlValue::Int(3),
                SqlValue::NullText,
                SqlValue::Int(4),
                SqlValue::Int(5),
                SqlValue::Int(6),
                SqlValue::Int(7),
                SqlValue::Int(8),
                SqlValue::Text("十".into()),
            ],
        );
        assert_eq!(
            statement,
            "COPY (SELECT * FROM t WHERE a = E'x'' OR ''1''=''1 \\\\'' --' AND b > (-7::BIGINT) AND c = E'十' AND d IN (NULL, 4::BIGINT, 5::BIGINT, 6::BIGINT, 7::BIGINT, 8::BIGINT) LIMIT 3::BIGINT) TO STDOUT WITH (FORMAT text, HEADER true)"
        );
    }

    #[test]
    fn a_value_holding_a_placeholder_is_not_substituted_into() {
        let statement = copy_statement(
            "SELECT 1 WHERE a = $2 AND b = $1",
            &[SqlValue::Int(7), SqlValue::Text("$1$2".into())],
        );
        assert_eq!(
            statement,
            "COPY (SELECT 1 WHERE a = E'$1$2' AND b = 7::BIGINT) TO STDOUT WITH (FORMAT text, HEADER true)"
        );
    }

    #[test]
    fn rows_are_read_by_name_with_nulls_and_numbers() {
        let output = b"id\tn\tnote\nH1\t42\t\\N\nH2\t-1\ta\\tb\n";
        let mut rows = CopyRows::default();
        let mut read = Vec::new();
        rows.push_bytes(output, &mut |row| {
            read.push((
                row.int("n").unwrap(),
                row.text("id").unwrap(),
                row.opt_text("note").unwrap(),
                row.int("note").is_err(),
                row.text("missing").is_err(),
            ))
        })
        .unwrap();
        rows.finish().unwrap();
        assert_eq!(
            read,
            [
                (42, "H1".to_string(), None, true, true),
                (-1, "H2".to_string(), Some("a\tb".to_string()), true, true)
            ]
        );
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic() {
        for bad in [&b"a\tb\n1\n"[..], b"a\n\\", b"a\nx\\\n", b"a\n\xff\n"] {
            let mut rows = CopyRows::default();
            let result = rows
                .push_bytes(bad, &mut |_| {})
                .and_then(|()| rows.finish());
            assert!(result.is_err(), "{bad:?}");
        }
    }

    /// A COPY the server refuses before its first row (here: no such table) closes its
    /// connection instead of returning it a reply behind: every later read on the pool
    /// still gets its own answer. Runs on the real server (127.0.0.1:5432, or
    /// `DISBURSE_TEST_PG`) in a database of its own.
    #[test]
    fn a_copy_refused_before_its_first_row_leaves_the_pool_in_step() {
        use crate::store::test_postgres::TestPostgres;
        use crate::store::Store;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let database = TestPostgres::create("copy_out").await;
            let url = &database.url;
            let store = Store::connect(url).await.unwrap();
            for round in 0..12 {
                let refused = store
                    .fetch_mapped(
                        "SELECT a FROM no_such_table WHERE a = $1",
                        &[SqlValue::Int(round)],
                        |row| Ok(row.int("a")?),
                    )
                    .await;
                assert!(refused.is_err(), "round {round}");
                let answered = store
                    .fetch_mapped(
                        "SELECT CAST($1 AS BIGINT) AS n, 'x' AS t",
                        &[SqlValue::Int(round)],
                        |row| Ok((row.int("n")?, row.text("t")?)),
                    )
                    .await
                    .unwrap_or_else(|error| panic!("round {round}: {error}"));
                assert_eq!(answered, [(round, "x".to_string())]);
                assert_eq!(store.table_row_count("run").await.unwrap(), 0);
            }
            store.close().await;
        });
    }

    proptest! {
        /// What `COPY … FROM STDIN` is sent (`copy_text_row`) reads back unchanged,
        /// however the bytes are split into messages.
        #[test]
        fn copy_text_round_trips(
            values in proptest::collection::vec(proptest::option::of(".{0,12}"), 1..6),
            split_at in 0usize..200,
        ) {
            let header: Vec<SqlValue> = (0..values.len())
                .map(|index| SqlValue::Text(format!("c{index}").into()))
                .collect();
            let row: Vec<SqlValue> = values
                .iter()
                .map(|value| value.clone().map_or(SqlValue::NullText, |text| SqlValue::Text(text.into())))
                .collect();
            let mut bytes = Vec::new();
            copy_text_row(&mut bytes, &header);
            copy_text_row(&mut bytes, &row);
            copy_text_row(&mut bytes, &row);
            let read = read_back(&bytes, split_at);
            prop_assert_eq!(read, vec![values.clone(), values]);
        }
    }
}
