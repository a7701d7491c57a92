//! ListImages' query from a request's parameters: filters, state, page,
//! marker, and their bounds (an unknown value is 422 naming it).

use uuid::Uuid;

use super::Images;
use crate::db::images::{ListQuery, StateFilter, TextMatch};
use crate::error::{Error, FieldCode};
use crate::identity::Caller;
use crate::manifest::{State as ImgState, normalize_date};
use crate::params::{Params, uuid_param};

/// Most `tag.K` filters, and most `billing_tag` filters, of one ListImages.
pub const MAX_LIST_FILTERS: usize = 32;
/// Most query parameters of one ListImages.
pub const MAX_LIST_PARAMS: usize = 128;

impl Images {
    /// ListImages' query from the request's parameters (None: a query that
    /// matches nothing, such as an owner that is not a uuid).
    pub async fn list_query(
        &self,
        caller: &Caller,
        p: &Params,
    ) -> Result<Option<ListQuery>, Error> {
        check_list_size(p)?;
        let mut q = ListQuery {
            state: list_state(p)?,
            ..ListQuery::default()
        };
        if let Some(o) = p.get("owner").filter(|s| !s.is_empty()) {
            match Uuid::parse_str(o) {
                Ok(u) => q.owner = Some(u),
                Err(_) => return Ok(None), // matches nothing
            }
        }
        list_filters(p, &mut q)?;
        list_downloads(p, caller, &mut q)?;
        self.list_page(p, caller, &mut q).await?;
        Ok(Some(q))
    }

    /// ListImages' page: `limit`, `sort` and `marker` (an image uuid or a date).
    async fn list_page(&self, p: &Params, caller: &Caller, q: &mut ListQuery) -> Result<(), Error> {
        if let Some(l) = p.get("limit").filter(|s| !s.is_empty()) {
            match l.parse::<u64>() {
                Ok(n) => q.limit = n.min(1000) as u32,
                Err(_) => {
                    return Err(Error::invalid_param(
                        "limit",
                        FieldCode::Invalid,
                        format!("invalid limit: \"{l}\""),
                    ));
                }
            }
        }
        match p.get("sort").unwrap_or("") {
            "" | "published_at" | "published_at.asc" => {}
            "published_at.desc" => q.desc = true,
            s => {
                return Err(Error::invalid_param(
                    "sort",
                    FieldCode::Invalid,
                    format!("invalid 'sort': not a valid sorting attribute: '{s}'"),
                ));
            }
        }
        if let Some(m) = p.get("marker").filter(|s| !s.is_empty()) {
            q.marker = match Uuid::parse_str(m) {
                // Looked up with the caller's visibility: an image the caller
                // may not see is a 404 exactly like a missing one.
                Ok(u) => self
                    .get(caller, u)
                    .await?
                    .published_at
                    .as_deref()
                    .and_then(normalize_date),
                Err(_) => Some(normalize_date(m).ok_or_else(|| {
                    Error::invalid_param(
                        "marker",
                        FieldCode::Invalid,
                        format!("invalid \"marker\": \"{m}\" is not a UUID or date string"),
                    )
                })?),
            };
        }
        Ok(())
    }
}

/// ListImages' bounds on filters and parameters.
fn check_list_size(p: &Params) -> Result<(), Error> {
    for (field, n) in [
        (
            "tag",
            p.0.iter().filter(|(k, _)| k.starts_with("tag.")).count(),
        ),
        ("billing_tag", p.all("billing_tag").count()),
    ] {
        if n > MAX_LIST_FILTERS {
            return Err(Error::invalid_param(
                field,
                FieldCode::Invalid,
                format!("too many \"{field}\" filters: {n} (at most {MAX_LIST_FILTERS})"),
            ));
        }
    }
    if p.0.len() > MAX_LIST_PARAMS {
        return Err(Error::invalid_param(
            "query",
            FieldCode::Invalid,
            format!("too many query parameters (at most {MAX_LIST_PARAMS})"),
        ));
    }
    Ok(())
}

/// `?state=` (default `active`).
fn list_state(p: &Params) -> Result<StateFilter, Error> {
    match p.get("state").unwrap_or("active") {
        "" | "active" => Ok(StateFilter::Only(ImgState::Active)),
        "all" => Ok(StateFilter::All),
        s => ImgState::parse(s).map(StateFilter::Only).ok_or_else(|| {
            Error::invalid_param(
                "state",
                FieldCode::Invalid,
                format!("invalid state: \"{s}\""),
            )
        }),
    }
}

/// The filters of ListImages but `state` and `owner`: name, version, type,
/// os, public, origin, tags and billing tags.
fn list_filters(p: &Params, q: &mut ListQuery) -> Result<(), Error> {
    q.name = p
        .get("name")
        .filter(|s| !s.is_empty())
        .map(TextMatch::parse);
    q.version = p
        .get("version")
        .filter(|s| !s.is_empty())
        .map(TextMatch::parse);
    q.type_ = p
        .get("type")
        .filter(|s| !s.is_empty())
        .map(|t| match t.strip_prefix('!') {
            Some(rest) => (true, rest.to_string()),
            None => (false, t.to_string()),
        });
    q.os = p.get("os").filter(|s| !s.is_empty()).map(str::to_string);
    q.public = p.bool("public")?;
    if let Some(o) = p.get("origin").filter(|s| !s.is_empty()) {
        q.origin = Some(uuid_param("origin", o)?);
    }
    for (k, v) in &p.0 {
        if let Some(key) = k.strip_prefix("tag.") {
            if v.is_empty() {
                q.tag_keys.push(key.to_string());
            } else {
                q.tags.push(format!("{key}={v}"));
            }
        }
    }
    q.billing_tags = p
        .all("billing_tag")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(())
}

/// `last_downloaded_before` (never downloaded, or last before) and
/// `last_downloaded_since` (last at or after): filters on admin fields, so
/// like `inclAdminFields` for authenticated callers only.
fn list_downloads(p: &Params, caller: &Caller, q: &mut ListQuery) -> Result<(), Error> {
    for field in ["last_downloaded_before", "last_downloaded_since"] {
        let Some(v) = p.get(field).filter(|s| !s.is_empty()) else {
            continue;
        };
        if !caller.authenticated {
            return Err(Error::Unauthorized(format!(
                "{field} requires authentication"
            )));
        }
        let t = normalize_date(v)
            .and_then(|d| crate::clock::Timestamp::parse(&d))
            .ok_or_else(|| {
                Error::invalid_param(
                    field,
                    FieldCode::Invalid,
                    format!("invalid \"{field}\": \"{v}\" is not a date"),
                )
            })?;
        if field == "last_downloaded_before" {
            q.last_downloaded_before = Some(t);
        } else {
            q.last_downloaded_since = Some(t);
        }
    }
    Ok(())
}
