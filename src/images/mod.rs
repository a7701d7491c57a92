//! The image service (IMGAPI's classic flow) and its reads: get, list,
//! markers. Enforces visibility and ownership; the state changes
//! (`lifecycle`), files and icons (`files`), moves of bytes (`transfer`) and
//! the placeholder reaper (`reaper`) are its submodules, and every state
//! change is a read-modify-write transaction in SQLite.

mod clone;
mod downloads;
mod files;
mod lifecycle;
mod list_cache;
mod query;
mod reaper;
mod transfer;

pub use downloads::{DownloadLog, MAX_PENDING as MAX_PENDING_DOWNLOADS, flush_downloads_until};
pub use lifecycle::placeholder_expiry;
pub use list_cache::ListCache;
pub use reaper::reap_placeholders_forever;

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::db::images::{ListQuery, Listed, Select, StateFilter};
use crate::db::{Db, Meta};
use crate::digest::Digests;
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::manifest::validate::{
    ADMIN_MUTABLE, CREATE_KEYS, DELETABLE, IMPORT_EXTRA_KEYS, MAX_ACL, MUTABLE, ZVOL_FIELDS,
    check_limits, is_uuid, normalize, upgrade_v1,
};
use crate::manifest::{
    COMPRESSIONS, Ctx, Icon, Image, ImageFile, Placeholder, State, validate_manifest,
};
use crate::store::{ByteStream, StoreName, Stores, image_file_key, image_icon_key, ingest};

/// Largest icon, in bytes (IMGAPI: 128 KiB).
pub const MAX_ICON_SIZE: u64 = 128 * 1024;

/// The image service.
#[derive(Clone)]
pub struct Images {
    pub(crate) db: Db,
    pub(crate) stores: Stores,
    /// Default `stor` for new files: `manta` when it is an object store, else `local`.
    pub(crate) default_stor: StoreName,
    pub(crate) max_file_size: u64,
    pub(crate) placeholder_lifespan_days: u64,
    pub(crate) locks: crate::locks::ImageLocks,
    /// Domain time: publication, file mtimes, placeholder expiry, downloads.
    pub(crate) clock: crate::clock::Clock,
    /// Download counts not yet in the database.
    pub(crate) downloads: DownloadLog,
    /// The server's counters.
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The accounts' quotas, checked by every change that adds an image or
    /// bytes.
    pub(crate) quotas: crate::space::Quotas,
    /// ListImages' bodies kept on this node.
    pub(crate) list_cache: std::sync::Arc<ListCache>,
}

/// AddImageFile's parameters.
#[derive(Debug, Clone, Default)]
pub struct AddFileParams {
    pub compression: Option<String>,
    pub sha1: Option<String>,
    pub dataset_guid: Option<String>,
    pub storage: Option<String>,
    pub content_length: Option<u64>,
}

/// AddImageIcon's parameters.
#[derive(Debug, Clone, Default)]
pub struct AddIconParams {
    pub content_type: Option<String>,
    pub sha1: Option<String>,
    pub content_length: Option<u64>,
}

impl Images {
    /// Does `old` (None: nothing) becoming `new` fit `new`'s owner's
    /// quotas? Run in the write transaction `c` that stores `new`.
    fn admit(&self, c: &dyn Meta, caller: &Caller, old: Option<&Image>, new: &Image) -> Result<()> {
        let old = old.filter(|o| o.owner == new.owner);
        let entry = crate::space::Entry {
            owner: new.owner,
            bytes: new
                .stored_bytes()
                .saturating_sub(old.map_or(0, Image::stored_bytes)),
            images: u64::from(old.is_none()),
            what: match old {
                None => format!("image {} of {} bytes", new.uuid, new.stored_bytes()),
                Some(_) => format!("{} bytes more in image {}", new.stored_bytes(), new.uuid),
            },
        };
        self.quotas.admit(c, caller, &entry)
    }

    /// [`Images::admit`] in a transaction of its own, before bytes that
    /// would replace `cur`'s are committed (they are checked again when
    /// they are recorded).
    async fn admit_before(&self, caller: &Caller, cur: &Image, new: Image) -> Result<()> {
        let (this, caller, cur) = (self.clone(), caller.clone(), cur.clone());
        self.db
            .write(move |c| this.admit(c, &caller, Some(&cur), &new))
            .await
    }

    /// Serialises file replacement, activation and deletion of one image.
    async fn lock(&self, uuid: Uuid) -> Result<crate::locks::ImageGuard<'_>> {
        self.locks.lock(uuid).await
    }

    /// GetImage: the image if the caller may see it, else 404.
    pub async fn get(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        let img = self.db.image_get(uuid).await?;
        match img {
            Some(img) if caller.can_see(&img) => Ok(img),
            _ => Err(not_found(uuid)),
        }
    }

    /// ListImages.
    pub async fn list(&self, caller: &Caller, query: ListQuery) -> Result<Vec<Image>> {
        let Some(query) = visible_query(caller, query) else {
            return Ok(vec![]);
        };
        Ok(self.db.read(move |c| c.image_list(&query)).await?)
    }

    /// ListImages as the stored JSON of each image, in order: parsed by
    /// the caller only as it renders them (a page of 1 000 is never held
    /// parsed whole). With [`Select::Wire`], an image's stored list
    /// form where it has one (not parsed at all).
    pub async fn list_json(
        &self,
        caller: &Caller,
        query: ListQuery,
        select: Select,
    ) -> Result<Vec<Listed>> {
        let Some(query) = visible_query(caller, query) else {
            return Ok(vec![]);
        };
        Ok(self.db.image_list_json(query, select).await?)
    }

    /// The `published_at` of a marker image (ListImages `marker=<uuid>`).
    pub async fn marker_date(&self, uuid: Uuid) -> Result<Option<String>> {
        let img = self.db.image_get(uuid).await?;
        match img {
            None => Err(not_found(uuid)),
            Some(img) => Ok(img
                .published_at
                .as_deref()
                .and_then(crate::manifest::normalize_date)),
        }
    }
}

/// `query` restricted to what `caller` may see; None: nothing.
fn visible_query(caller: &Caller, mut query: ListQuery) -> Option<ListQuery> {
    if !caller.authenticated {
        // Nobody sees only active public images.
        query.account = None;
        query.public = match query.public {
            Some(false) => return None,
            _ => Some(true),
        };
        query.state = match query.state {
            StateFilter::All | StateFilter::Only(State::Active) => StateFilter::Only(State::Active),
            _ => return None,
        };
    } else if !caller.operator {
        query.account = caller.account;
    }
    Some(query)
}

fn not_found(uuid: Uuid) -> Error {
    Error::not_found(format!("image {uuid} was not found"))
}

/// An `origin` must be an image the caller can see; one it cannot see is
/// answered exactly as a missing one (no existence oracle).
pub fn check_origin(c: &dyn Meta, caller: &Caller, origin: Uuid) -> Result<()> {
    match c.image_get(origin)? {
        Some(o) if caller.can_see(&o) => Ok(()),
        _ => Err(Error::OriginDoesNotExist(origin)),
    }
}

/// AdminImportImage's origin check: the origin exists (whoever owns it).
fn check_origin_exists(c: &dyn Meta, origin: Uuid) -> Result<()> {
    match c.image_get(origin)? {
        Some(_) => Ok(()),
        None => Err(Error::OriginDoesNotExist(origin)),
    }
}
