//! Indexes built with `CREATE INDEX CONCURRENTLY`, which cannot run in a transaction: one that
//! fails (a duplicate for a unique index, a deadlock, a cancel) leaves its index behind, INVALID:
//! never used by queries, yet kept up to date by every write, and in the way of building it again
//! under the same name (or, with `IF NOT EXISTS`, taken for it). The migration that built it is
//! still pending, so the next run finds it, drops it concurrently and builds it again.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

/// The names of the indexes `sql` builds concurrently, as the catalog spells them: an unquoted
/// name folded to lower case, a quoted one as written.
pub fn built_concurrently(sql: &str) -> Vec<String> {
    let code: String = (sql.lines())
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    for statement in code.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|word| word.to_ascii_uppercase()).collect();
        let mut at = match upper.first().map(String::as_str) {
            Some("CREATE") => 1,
            _ => continue,
        };
        if upper.get(at).map(String::as_str) == Some("UNIQUE") {
            at += 1;
        }
        if upper.get(at..at + 2) != Some(&["INDEX".to_owned(), "CONCURRENTLY".to_owned()]) {
            continue;
        }
        at += 2;
        if upper.get(at..at + 3) == Some(&["IF".into(), "NOT".into(), "EXISTS".into()]) {
            at += 3;
        }
        // `CREATE INDEX CONCURRENTLY ON t (c)` names no index: PostgreSQL picks the name.
        match words.get(at) {
            Some(name) if !upper[at].starts_with("ON") => names.push(catalog_name(name)),
            _ => {}
        }
    }
    names
}

fn catalog_name(name: &str) -> String {
    let name = name.split('(').next().unwrap_or(name);
    match name
        .strip_prefix('"')
        .and_then(|name| name.strip_suffix('"'))
    {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => name.to_ascii_lowercase(),
    }
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    valid: bool,
}

/// Whether the index `name`, found as an unqualified name is, exists and is valid; `None` when
/// there is none.
pub fn valid(conn: &mut PgConnection, name: &str) -> QueryResult<Option<bool>> {
    let found = diesel::sql_query(
        "SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = $1 AND pg_table_is_visible(c.oid)",
    )
    .bind::<Text, _>(name)
    .get_result::<Found>(conn)
    .optional()?;
    Ok(found.map(|found| found.valid))
}

/// Drops, concurrently, each index of `names` left INVALID by an earlier build; outside any
/// transaction, with the connection's lock wait.
pub fn drop_invalid(conn: &mut PgConnection, migration: &str, names: &[String]) -> QueryResult<()> {
    for name in names {
        if valid(conn, name)? == Some(false) {
            log::warn!(
                "migration {migration}: index {name} is INVALID, left by a build of it that \
                 failed; dropping it concurrently to build it again"
            );
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            conn.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {quoted}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::built_concurrently;

    #[test]
    fn the_indexes_a_migration_builds_concurrently_are_found_by_their_catalog_names() {
        let sql = "-- CREATE INDEX CONCURRENTLY commented_out ON t (c);\n\
                   CREATE INDEX CONCURRENTLY student_major_idx ON student (major, id);\n\
                   create unique index concurrently if not exists \"Quoted\"\"Name\" on t (c);\n\
                   CREATE INDEX CONCURRENTLY Folded ON t (c);\n\
                   CREATE INDEX CONCURRENTLY ON t (c);\n\
                   CREATE INDEX not_concurrent ON t (c);";
        assert_eq!(
            built_concurrently(sql),
            ["student_major_idx", "Quoted\"Name", "folded"]
        );
    }
}
