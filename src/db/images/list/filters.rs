//! The WHERE of a ListImages query: which filter's index drives the walk
//! (`Driver`), how every other filter is checked on the rows it yields, the
//! `account` visibility union, and the parameters as they are bound.

use rusqlite::types::Value as SqlValue;
use uuid::Uuid;

use super::*;

/// The conditions of a ListImages query.
pub(super) struct Where {
    /// The filters (and the owner-only form of the account union).
    pub(super) filters: Vec<String>,
    /// The `account` visibility union, checked on the image's row.
    pub(super) account: Option<String>,
    pub(super) driver: Driver,
}

impl Where {
    /// `WHERE` and every condition, or nothing.
    pub(super) fn all(&self) -> String {
        let all: Vec<&str> = self
            .filters
            .iter()
            .chain(&self.account)
            .map(String::as_str)
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    }

    /// `WHERE` and the filters without the account union, or nothing.
    pub(super) fn filters(&self) -> String {
        if self.filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.filters.join(" AND "))
        }
    }
}

/// The account of a `public=false` query better served as the union of
/// its own images and those shared with it (see [`list_sql_dense`]).
pub(super) fn sparse_account(q: &ListQuery, dense: Dense) -> Option<Uuid> {
    let a = q.account?;
    let weak = match Driver::pick(q, dense, false) {
        Driver::Column("os" | "type" | "public" | "state")
        | Driver::Text(_)
        | Driver::TagKey
        | Driver::None => true,
        // A dense tag's ordered walk is no better than a column's.
        Driver::Tag => dense.tag,
        Driver::BillingTag => dense.billing_tag,
        _ => false,
    };
    (q.public == Some(false) && q.owner.is_none() && !owner_only(q) && weak).then_some(a)
}

/// Does the `account` union reduce to the account's own images (the
/// state asked for is one only an owner sees)?
pub(super) fn owner_only(q: &ListQuery) -> bool {
    q.account.is_some()
        && matches!(
            q.state,
            StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
        )
}

/// The conditions of `q` and the driver it picked; with `shared_with`,
/// only the activated images whose acl holds that account, driven by its
/// `image_acl` rows unless a more selective filter is present.
pub(super) fn where_sql(
    q: &ListQuery,
    dense: Dense,
    shared_with: Option<Uuid>,
    b: &mut Sql,
) -> Where {
    let driver = Driver::pick(q, dense, shared_with.is_some());
    let mut wh = column_conditions(q, driver, b);
    side_table_conditions(q, driver, b, &mut wh);
    channel_download_marker_conditions(q, driver, b, &mut wh);
    let account = q
        .account
        .and_then(|a| account_condition(q, a, driver, b, &mut wh));
    if let Some(a) = shared_with {
        let p = b.arg(text(&a.to_string()));
        wh.push(format!(
            "{} = 1 AND {} IN (SELECT uuid FROM image_acl WHERE account = {p})",
            driver.written_column("activated"),
            if driver == Driver::Acl {
                "uuid"
            } else {
                "+uuid"
            }
        ));
    }
    Where {
        filters: wh,
        account,
        driver,
    }
}

/// The conditions of `q` on the images' own columns (state, origin,
/// owner, name, version, type, os, public), their parameters bound in
/// that order.
fn column_conditions(q: &ListQuery, driver: Driver, b: &mut Sql) -> Vec<String> {
    let col = |c: &str| driver.written_column(c);
    let mut wh: Vec<String> = Vec::new();
    match q.state {
        StateFilter::All => {}
        StateFilter::Only(s) => {
            let p = b.arg(text(s.as_str()));
            wh.push(format!("{} = {p}", col("state")));
        }
    }
    if let Some(o) = q.origin {
        let p = b.arg(text(&o.to_string()));
        wh.push(format!("{} = {p}", col("origin")));
    }
    if let Some(o) = q.owner {
        let p = b.arg(text(&o.to_string()));
        wh.push(format!("{} = {p}", col("owner")));
    }
    for (c, m) in [("name", &q.name), ("version", &q.version)] {
        text_conditions(c, m, driver, b, &mut wh);
    }
    if let Some((neg, t)) = &q.type_ {
        let p = b.arg(text(t));
        wh.push(format!(
            "{} {} {p}",
            col("type"),
            if *neg { "!=" } else { "=" }
        ));
    }
    if let Some(os) = &q.os {
        let p = b.arg(text(os));
        wh.push(format!("{} = {p}", col("os")));
    }
    if let Some(public) = q.public {
        // A literal, not a parameter: the planner sees it (see [`limit`]).
        wh.push(format!("{} = {}", col("public"), public as i64));
    }
    wh
}

/// The conditions of the match `m` on the column `c` (`name` or
/// `version`), pushed onto `wh`: equal to an exact value, or holding a
/// `~` substring (and, where that column drives, its matching values).
fn text_conditions(
    c: &'static str,
    m: &Option<TextMatch>,
    driver: Driver,
    b: &mut Sql,
    wh: &mut Vec<String>,
) {
    match m {
        Some(TextMatch::Exact(s)) => {
            let p = b.arg(text(s));
            wh.push(format!("{} = {p}", driver.written_column(c)));
        }
        Some(TextMatch::Contains(s)) => {
            // Checked on every row even when the trigram index drives:
            // `instr` is the definition (case-sensitive, no wildcards).
            let p = b.arg(text(s));
            wh.push(format!("instr({c}, {p}) > 0"));
            if driver == Driver::Text(c) {
                // The distinct values holding `s`, then their images.
                // (With the trigram index: its hits by rowid, `+col`.)
                let hit = if s.chars().count() >= TRIGRAM {
                    let p = b.arg(text(&fts_phrase(s)));
                    format!(
                        "+col = '{c}' AND id IN \
                         (SELECT rowid FROM image_text WHERE image_text MATCH {p})"
                    )
                } else {
                    format!("col = '{c}' AND instr(value, {p}) > 0")
                };
                wh.push(format!(
                    "{c} IN (SELECT value FROM image_values WHERE {hit})"
                ));
            }
        }
        None => {}
    }
}

/// The tag, tag key and billing tag conditions of `q`, pushed onto `wh`
/// in that order: the first of a driving kind picks the rows through its
/// side table, every other one is checked per row.
fn side_table_conditions(q: &ListQuery, driver: Driver, b: &mut Sql, wh: &mut Vec<String>) {
    for (i, t) in q.tags.iter().enumerate() {
        let p = b.arg(text(t));
        if i == 0 && driver == Driver::Tag {
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_tags WHERE tag = {p})"
            ));
        } else {
            // Checked through `image_tags`' primary key (tag, uuid): the
            // uuid is in every list index, so a walk decides from its index
            // entry, reading the rows of the matching images only.
            wh.push(format!(
                "EXISTS (SELECT 1 FROM image_tags WHERE tag = {p} AND image_tags.uuid = images.uuid)"
            ));
        }
    }
    for (i, k) in q.tag_keys.iter().enumerate() {
        let p = b.arg(text(&format!("{k}=")));
        if i == 0 && driver == Driver::TagKey {
            // "key=" <= tag < "key>": every tag starting with "key=".
            let hi = b.arg(text(&format!("{k}>")));
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_tags WHERE tag >= {p} AND tag < {hi})"
            ));
        } else {
            wh.push(format!(
                "EXISTS (SELECT 1 FROM json_each(images.tags_search) WHERE substr(value, 1, length({p})) = {p})"
            ));
        }
    }
    for (i, t) in q.billing_tags.iter().enumerate() {
        let p = b.arg(text(t));
        if i == 0 && driver == Driver::BillingTag {
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_billing_tags WHERE tag = {p})"
            ));
        } else {
            wh.push(format!(
                "EXISTS (SELECT 1 FROM image_billing_tags \
                 WHERE tag = {p} AND image_billing_tags.uuid = images.uuid)"
            ));
        }
    }
}

/// The channel, last-download and marker conditions of `q`, pushed onto
/// `wh` in that order.
fn channel_download_marker_conditions(
    q: &ListQuery,
    driver: Driver,
    b: &mut Sql,
    wh: &mut Vec<String>,
) {
    match q.channel.as_deref() {
        None => {}
        Some("*") => wh.push("channels != '[]'".to_string()),
        Some(c) => {
            let p = b.arg(text(c));
            wh.push(format!(
                "EXISTS (SELECT 1 FROM json_each(images.channels) WHERE value = {p})"
            ));
        }
    }
    // Checked through `image_downloads`' primary key, like a tag.
    if let Some(t) = q.last_downloaded_before {
        let p = b.arg(text(&t.to_string()));
        wh.push(format!(
            "NOT EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid AND d.last_at >= {p})"
        ));
    }
    if let Some(t) = q.last_downloaded_since {
        let p = b.arg(text(&t.to_string()));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid AND d.last_at >= {p})"
        ));
    }
    if let Some(m) = &q.marker {
        let p = b.arg(text(m));
        wh.push(format!(
            "{} {} {p}",
            if driver.sorted() && (driver == Driver::None || q.state != StateFilter::All) {
                "published_at"
            } else {
                "+published_at"
            },
            if q.desc { "<=" } else { ">=" }
        ));
    }
}

/// The `account` union of `q` for the account `a`: (1) own images; (2)
/// activated public; (3) activated private shared via acl. Others' images
/// only when the state filter is not unactivated/disabled: else the
/// account's own images are a filter pushed onto `wh`, and there is no
/// union.
fn account_condition(
    q: &ListQuery,
    a: Uuid,
    driver: Driver,
    b: &mut Sql,
    wh: &mut Vec<String>,
) -> Option<String> {
    let p = b.arg(text(&a.to_string()));
    let others = !matches!(
        q.state,
        StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
    );
    if others {
        Some(format!(
            "(+owner = {p} OR (+activated = 1 AND (+public = 1 OR \
             uuid IN (SELECT uuid FROM image_acl WHERE account = {p}))))"
        ))
    } else {
        wh.push(format!("{} = {p}", driver.written_column("owner")));
        None
    }
}

/// `q.limit`, written into the SQL as a literal, not bound: the
/// connections plan without bound values (QPSG, see `db::open_conn`), and the
/// planner uses a known limit (a number of at most 1 000; a few distinct
/// limits mean a few cached statements).
pub(super) fn limit(q: &ListQuery) -> u32 {
    q.limit
}

/// Positional parameters of a query being built.
#[derive(Default)]
pub(super) struct Sql {
    pub(super) args: Vec<SqlValue>,
}

impl Sql {
    pub(super) fn arg(&mut self, v: SqlValue) -> String {
        self.args.push(v);
        format!("?{}", self.args.len())
    }
}

pub(super) fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

/// The FTS5 query matching `s` as a substring (a trigram phrase: every
/// trigram of `s`, in order).
pub(super) fn fts_phrase(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The shortest substring the trigram index can find (shorter ones are
/// looked for in each distinct value).
pub(super) const TRIGRAM: usize = 3;

/// The filter whose index picks a ListImages query's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    /// A column with an index ending in (…, published_at, uuid) or, for
    /// `origin`, its own index.
    Column(&'static str),
    /// The distinct values (and their trigram index), for `~` on this
    /// column; then the column's index.
    Text(&'static str),
    Tag,
    TagKey,
    BillingTag,
    /// The images shared with an account (its `image_acl` rows).
    Acl,
    /// No filter: the walk of `images_published_at`.
    None,
}

impl Driver {
    /// The most selective filter present, in an order fixed by what each
    /// filter usually selects (an image, a name's versions, an owner's
    /// images, … down to the few values of os, type, public and state).
    pub(super) fn pick(q: &ListQuery, dense: Dense, shared: bool) -> Driver {
        let exact = |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Exact(_)));
        let text =
            |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Contains(s)) if !s.is_empty());
        let ordered = matches!(q.state, StateFilter::Only(_));
        if q.origin.is_some() {
            Driver::Column("origin")
        } else if exact(&q.name) {
            Driver::Column("name")
        } else if q.owner.is_some() || owner_only(q) {
            Driver::Column("owner")
        } else if exact(&q.version) {
            Driver::Column("version")
        } else if shared {
            Driver::Acl
        } else if !q.tags.is_empty() && !dense.tag {
            Driver::Tag
        } else if !q.billing_tags.is_empty() && !dense.billing_tag {
            Driver::BillingTag
        } else if text(&q.name) {
            Driver::Text("name")
        } else if text(&q.version) {
            Driver::Text("version")
        } else if !q.tag_keys.is_empty() && !dense.tag_key {
            Driver::TagKey
        } else if !q.tags.is_empty() && ordered {
            // Dense, but its walk is in ListImages' order (see
            // `walk_sql`): as good as a column's, and fewer rows.
            Driver::Tag
        } else if !q.billing_tags.is_empty() && ordered {
            Driver::BillingTag
        } else if q.os.is_some() {
            Driver::Column("os")
        } else if matches!(q.type_, Some((false, _))) {
            Driver::Column("type")
        } else if q.public.is_some() {
            Driver::Column("public")
        } else if matches!(q.state, StateFilter::Only(_)) {
            Driver::Column("state")
        } else {
            Driver::None
        }
    }

    pub(super) fn column(self) -> Option<&'static str> {
        match self {
            Driver::Column(c) | Driver::Text(c) => Some(c),
            _ => None,
        }
    }

    /// The column `c` as a condition writes it: its plain name where the
    /// driver's index has it (usable by the index), else `+c` (checked per
    /// row).
    pub(super) fn written_column(self, c: &str) -> String {
        if self.column() == Some(c) || (c == "state" && self.index_has_state()) {
            c.to_string()
        } else {
            format!("+{c}")
        }
    }

    /// Is `state` the second column of the driver's index, used as such?
    /// (Not for `~` matches: offered `state = ?`, the planner would rather
    /// walk images_list_state in order than sort the values' images.)
    pub(super) fn index_has_state(self) -> bool {
        matches!(self, Driver::Column(c) if c != "origin")
    }

    /// Does the driver's walk come in ListImages' order (so a `marker`
    /// bounds it)?
    pub(super) fn sorted(self) -> bool {
        matches!(self, Driver::Column(c) if c != "origin") || self == Driver::None
    }
}
