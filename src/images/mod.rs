//! The image lifecycle (IMGAPI's classic flow): create, import, update,
//! activate, enable/disable, ACLs, files, icons, delete. Enforces
//! visibility and ownership; all state changes are read-modify-write
//! transactions in SQLite.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::db::{Db, images as q};
use crate::digest::Digests;
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::manifest::validate::{
    ADMIN_MUTABLE, CREATE_KEYS, DELETABLE, IMPORT_EXTRA_KEYS, MAX_ACL, MUTABLE, ZVOL_FIELDS,
    check_limits, is_uuid, normalize, upgrade_v1,
};
use crate::manifest::{
    COMPRESSIONS, Ctx, Icon, Image, ImageFile, Placeholder, State, now_iso, validate_manifest,
};
use crate::store::{ByteStream, Stores, image_file_key, image_icon_key, ingest};

/// Largest icon, in bytes (IMGAPI: 128 KiB).
pub const MAX_ICON_SIZE: u64 = 128 * 1024;

/// The image service.
#[derive(Clone)]
pub struct Images {
    pub db: Db,
    pub stores: Stores,
    /// Default `stor` for new files: `manta` when it is an object store, else `local`.
    pub default_stor: &'static str,
    pub max_file_size: u64,
    pub placeholder_lifespan_days: u64,
    pub locks: crate::locks::ImageLocks,
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
    pub fn new(
        db: Db,
        stores: Stores,
        default_stor: &'static str,
        max_file_size: u64,
        placeholder_lifespan_days: u64,
        locks: crate::locks::ImageLocks,
    ) -> Images {
        Images {
            db,
            stores,
            default_stor,
            max_file_size,
            placeholder_lifespan_days,
            locks,
        }
    }

    /// Serialises file replacement, activation and deletion of one image.
    async fn lock(&self, uuid: Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks.lock(uuid).await
    }

    /// GetImage: the image if the caller may see it, else 404.
    pub async fn get(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        let img = self.db.read(move |c| q::get(c, uuid)).await?;
        match img {
            Some(img) if caller.can_see(&img) => Ok(img),
            _ => Err(not_found(uuid)),
        }
    }

    /// ListImages.
    pub async fn list(&self, caller: &Caller, mut query: q::ListQuery) -> Result<Vec<Image>> {
        if !caller.authenticated {
            // Nobody sees only active public images.
            query.account = None;
            query.public = match query.public {
                Some(false) => return Ok(vec![]),
                _ => Some(true),
            };
            query.state = match query.state {
                q::StateFilter::All | q::StateFilter::Only(State::Active) => {
                    q::StateFilter::Only(State::Active)
                }
                _ => return Ok(vec![]),
            };
        } else if !caller.operator {
            query.account = caller.account;
        }
        Ok(self.db.read(move |c| q::list(c, &query)).await?)
    }

    /// The `published_at` of a marker image (ListImages `marker=<uuid>`).
    pub async fn marker_date(&self, uuid: Uuid) -> Result<Option<String>> {
        let img = self.db.read(move |c| q::get(c, uuid)).await?;
        match img {
            None => Err(not_found(uuid)),
            Some(img) => Ok(img
                .published_at
                .as_deref()
                .and_then(crate::manifest::normalize_date)),
        }
    }

    /// CreateImage.
    pub async fn create(
        &self,
        caller: &Caller,
        body: Map<String, Value>,
        channels: Vec<String>,
    ) -> Result<Image> {
        let mut img = self.prepare_create(caller, body)?;
        img.channels = channels;
        self.insert_new(caller, img).await
    }

    /// CreateImage's checks: the new, unactivated image (not yet stored).
    pub fn prepare_create(&self, caller: &Caller, body: Map<String, Value>) -> Result<Image> {
        caller.require_auth()?;
        if body.contains_key("state") {
            return Err(Error::ValidationFailed {
                message: "invalid image data: \"state\"".into(),
                errors: vec![FieldError::msg(
                    "state",
                    FieldCode::NotAllowed,
                    "Parameter cannot be set",
                )],
            });
        }
        let mut body = body;
        if let Some(a) = caller.account {
            match body.get("owner") {
                None => {
                    body.insert("owner".into(), Value::String(a.to_string()));
                }
                Some(o) if o.as_str() != Some(a.to_string().as_str()) => {
                    return Err(Error::invalid_param(
                        "owner",
                        FieldCode::Invalid,
                        format!("invalid owner: given owner, {o}, does not match account, \"{a}\""),
                    ));
                }
                _ => {}
            }
        }
        body.entry("v").or_insert(Value::from(2));
        build_image(body, Uuid::new_v4(), false)
    }

    /// AdminImportImage: keeps uuid and published_at; upgrades v1 manifests.
    pub async fn import(
        &self,
        caller: &Caller,
        uuid: Uuid,
        mut body: Map<String, Value>,
        channels: Vec<String>,
    ) -> Result<Image> {
        caller.require_operator()?;
        upgrade_v1(&mut body);
        // A missing or non-string uuid is a mismatch with the URL's, as in
        // IMGAPI (`{uuid, Invalid}`).
        let b = body.get("uuid").map_or_else(
            || "undefined".to_string(),
            |b| b.as_str().map_or_else(|| b.to_string(), str::to_string),
        );
        if b != uuid.to_string() {
            return Err(Error::invalid_param(
                "uuid",
                FieldCode::Invalid,
                format!("URL UUID, \"{uuid}\" and body UUID, \"{b}\" do not match"),
            ));
        }
        if let Some(p) = body.get("published_at")
            && !p.is_string()
        {
            return Err(Error::invalid_param(
                "published_at",
                FieldCode::Invalid,
                "invalid \"published_at\"",
            ));
        }
        body.remove("state");
        body.remove("files");
        let mut img = build_image(body, uuid, true)?;
        img.channels = channels;
        // An existing `creating` placeholder is replaced; anything else conflicts.
        let origin = img.origin;
        self.db
            .write(move |c| {
                if let Some(o) = origin
                    && q::get(c, o)?.is_none()
                {
                    return Err(Error::OriginDoesNotExist(o));
                }
                match q::get(c, img.uuid)? {
                    Some(old) if old.placeholder == Some(Placeholder::Creating) => {
                        q::update(c, &img)?
                    }
                    Some(_) => return Err(Error::ImageUuidAlreadyExists(img.uuid)),
                    None => q::insert(c, &img).map_err(Error::uuid_taken(img.uuid))?,
                }
                Ok(img)
            })
            .await
    }

    async fn insert_new(&self, caller: &Caller, img: Image) -> Result<Image> {
        let origin = img.origin;
        let caller = caller.clone();
        self.db
            .write(move |c| {
                if let Some(o) = origin {
                    check_origin(c, &caller, o)?;
                }
                q::insert(c, &img).map_err(Error::uuid_taken(img.uuid))?;
                Ok(img)
            })
            .await
    }

    /// Read-modify-write of one image the caller may see and owns.
    /// `if_match` is checked against the Etag first.
    pub async fn modify<F>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        if_match: Option<String>,
        f: F,
    ) -> Result<Image>
    where
        F: FnOnce(&mut Image) -> Result<()> + Send + 'static,
    {
        self.modify_tx(caller, uuid, if_match, move |_, img| f(img))
            .await
    }

    /// `modify` whose closure also reads the database (in the same
    /// transaction). The closure runs inside the one writer: keep it cheap
    /// (validate what can be validated before).
    async fn modify_tx<F>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        if_match: Option<String>,
        f: F,
    ) -> Result<Image>
    where
        F: FnOnce(&rusqlite::Transaction, &mut Image) -> Result<()> + Send + 'static,
    {
        caller.require_auth()?;
        let caller = caller.clone();
        self.db
            .write(move |c| {
                let mut img = match q::get(c, uuid)? {
                    Some(img) if caller.can_see(&img) => img,
                    _ => return Err(not_found(uuid)),
                };
                caller.check_owner(&img)?;
                check_if_match(if_match.as_deref(), &img)?;
                f(c, &mut img)?;
                q::update(c, &img)?;
                Ok(img)
            })
            .await
    }

    /// ActivateImage.
    pub async fn activate(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        let _g = self.lock(uuid).await;
        self.modify(caller, uuid, None, move |img| {
            if img.activated {
                return Err(Error::ImageAlreadyActivated(uuid));
            }
            if img.files.is_empty() {
                return Err(Error::NoActivationNoFile(uuid));
            }
            img.activated = true;
            img.placeholder = None;
            img.error = None;
            img.expires_at = None;
            if img.published_at.is_none() {
                img.published_at = Some(now_iso());
            }
            Ok(())
        })
        .await
    }

    /// DisableImage / EnableImage.
    pub async fn set_disabled(&self, caller: &Caller, uuid: Uuid, disabled: bool) -> Result<Image> {
        self.modify(caller, uuid, None, move |img| {
            img.disabled = disabled;
            Ok(())
        })
        .await
    }

    /// AddImageAcl / RemoveImageAcl. The ACL is a set (each account once)
    /// of at most `MAX_ACL` accounts; an add that would pass the limit
    /// changes nothing (422 InvalidParameter `acl`).
    pub async fn change_acl(
        &self,
        caller: &Caller,
        uuid: Uuid,
        add: bool,
        accounts: Vec<Uuid>,
    ) -> Result<Image> {
        // Checks of the request itself run before the writer is taken.
        let mut seen = HashSet::with_capacity(accounts.len());
        let accounts: Vec<Uuid> = accounts.into_iter().filter(|a| seen.insert(*a)).collect();
        if add && accounts.len() > MAX_ACL {
            return Err(acl_too_large(accounts.len()));
        }
        self.modify(caller, uuid, None, move |img| {
            if add {
                let mut have = HashSet::with_capacity(img.acl.len() + accounts.len());
                img.acl.retain(|a| have.insert(*a));
                img.acl
                    .extend(accounts.into_iter().filter(|a| have.insert(*a)));
                if img.acl.len() > MAX_ACL {
                    return Err(acl_too_large(img.acl.len()));
                }
            } else {
                let gone: HashSet<Uuid> = accounts.into_iter().collect();
                img.acl.retain(|a| !gone.contains(a));
            }
            Ok(())
        })
        .await
    }

    /// UpdateImage: mutable fields (operators: admin fields too); `null`
    /// deletes the optional fields (`DELETABLE`) and is invalid for the
    /// others. `None` is a request without a body.
    pub async fn update(
        &self,
        caller: &Caller,
        uuid: Uuid,
        body: Option<Map<String, Value>>,
        if_match: Option<String>,
    ) -> Result<Image> {
        let Some(body) = body else {
            return Err(Error::ValidationFailed {
                message: "missing request body".into(),
                errors: vec![FieldError::new("body", FieldCode::MissingParameter)],
            });
        };
        if body.is_empty() {
            return Err(Error::ValidationFailed {
                message: "invalid image update data: no parameters provided".into(),
                errors: vec![],
            });
        }
        // Sizes of what is given are checked before the writer is taken
        // (the merged image is checked again inside).
        let mut given = body.clone();
        given.retain(|_, v| !v.is_null());
        normalize(&mut given);
        let errs = check_limits(&given);
        if !errs.is_empty() {
            return Err(Error::validation(errs));
        }
        drop(given);
        let acting_for_account = caller.account.is_some() || !caller.operator;
        let lifespan = self.placeholder_lifespan_days;
        let new_origin = body
            .get("origin")
            .and_then(Value::as_str)
            .map(str::to_string);
        let update_caller = caller.clone();
        self.modify_tx(caller, uuid, if_match, move |c, img| {
            let mut errs = Vec::new();
            for k in body.keys() {
                let k = k.as_str();
                if ADMIN_MUTABLE.contains(&k) {
                    if acting_for_account {
                        errs.push(FieldError::msg(
                            k,
                            FieldCode::NotAllowed,
                            "Can only be updated by operators",
                        ));
                    } else if k == "origin" && img.activated {
                        errs.push(FieldError::msg(
                            k,
                            FieldCode::NotAllowed,
                            "Can only be updated on unactivated images",
                        ));
                    }
                } else if k == "channels" {
                    errs.push(FieldError::msg(
                        k,
                        FieldCode::Invalid,
                        "channels are changed with ChannelAddImage and DeleteImage",
                    ));
                } else if !MUTABLE.contains(&k) {
                    errs.push(FieldError::msg(
                        k,
                        FieldCode::NotAllowed,
                        "Parameter cannot be updated",
                    ));
                }
            }
            if !errs.is_empty() {
                let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
                return Err(Error::ValidationFailed {
                    message: format!("invalid image update data: {}", fields.join(", ")),
                    errors: errs,
                });
            }
            let mut raw = match serde_json::to_value(&*img).map_err(Error::internal)? {
                Value::Object(m) => m,
                _ => return Err(Error::internal("image is not an object")),
            };
            let mut new_state = None;
            for (k, v) in body {
                if k == "state" {
                    new_state = Some(v);
                    continue;
                }
                let deletable = DELETABLE.contains(&k.as_str())
                    || (ZVOL_FIELDS.contains(&k.as_str()) && img.type_ != "zvol");
                if v.is_null() && deletable {
                    raw.remove(&k);
                } else {
                    raw.insert(k, v);
                }
            }
            normalize(&mut raw);
            let placeholder = matches!(img.state(), State::Creating | State::Failed);
            let mut errs = validate_manifest(&raw, Ctx { placeholder });
            let state = match &new_state {
                None => None,
                Some(v) => match v.as_str().and_then(State::parse) {
                    Some(s) => Some(s),
                    None => {
                        errs.push(FieldError::new("state", FieldCode::Invalid));
                        None
                    }
                },
            };
            if !errs.is_empty() {
                return Err(Error::validation(errs));
            }
            let mut updated: Image = serde_json::from_value(Value::Object(raw)).map_err(|e| {
                // Validation should have refused whatever does not deserialize.
                tracing::warn!(error = %e, "a validated update does not deserialize");
                Error::validation(vec![FieldError::msg(
                    "manifest",
                    FieldCode::Invalid,
                    "invalid image data",
                )])
            })?;
            if let Some(s) = state {
                apply_state(&mut updated, s, lifespan)?;
            }
            // A new origin must be another image the caller can see.
            if new_origin.is_some()
                && let Some(o) = updated.origin
                && img.origin != Some(o)
            {
                if o == uuid {
                    return Err(Error::OriginDoesNotExist(o));
                }
                check_origin(c, &update_caller, o)?;
            }
            *img = updated;
            Ok(())
        })
        .await
    }

    /// DeleteImage: refused while other images name it as `origin`.
    pub async fn delete(&self, caller: &Caller, uuid: Uuid) -> Result<()> {
        caller.require_auth()?;
        let _g = self.lock(uuid).await;
        let caller2 = caller.clone();
        let img = self
            .db
            .write(move |c| {
                let img = match q::get(c, uuid)? {
                    Some(img) if caller2.can_see(&img) => img,
                    _ => return Err(not_found(uuid)),
                };
                caller2.check_owner(&img)?;
                let deps = q::dependents(c, uuid)?;
                if !deps.is_empty() {
                    // Name only dependents the caller may see (IMGAPI: all
                    // of fewer than 10, else 5 and a count).
                    let limit = if deps.len() >= 10 { 5 } else { deps.len() };
                    let mut list: Vec<String> = Vec::new();
                    for d in &deps {
                        if list.len() == limit {
                            break;
                        }
                        if q::get(c, *d)?.is_some_and(|i| caller2.can_see(&i)) {
                            list.push(d.to_string());
                        }
                    }
                    let shown = if list.len() < deps.len() {
                        let more = deps.len() - list.len();
                        if list.is_empty() {
                            format!("{more} not visible to you")
                        } else {
                            format!("{} and {more} more...", list.join(", "))
                        }
                    } else {
                        list.join(", ")
                    };
                    return Err(Error::ImageHasDependentImages(format!(
                        "image \"{uuid}\" has {} dependent incremental image(s): {shown}",
                        deps.len()
                    )));
                }
                q::delete(c, uuid)?;
                Ok(img)
            })
            .await?;
        self.remove_stored(&img).await;
        Ok(())
    }

    /// Remove an image's file and icon from their stores (errors only logged:
    /// the record is already gone).
    pub async fn remove_stored(&self, img: &Image) {
        for f in &img.files {
            if let Ok(store) = self.stores.by_stor(&f.stor)
                && let Err(e) = store.delete(&image_file_key(&f.stor, &img.uuid)).await
            {
                tracing::warn!(image.uuid = %img.uuid, error = %e, "could not remove image file");
            }
        }
        if let Some(icon) = &img.icon
            && let Ok(store) = self.stores.by_stor(&icon.stor)
            && let Err(e) = store.delete(&image_icon_key(&icon.stor, &img.uuid)).await
        {
            tracing::warn!(image.uuid = %img.uuid, error = %e, "could not remove icon");
        }
    }

    /// AddImageFile: stream the body into the store, checking size, sha1 and
    /// Content-Length before it replaces any previous file.
    pub async fn add_file<S>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        p: AddFileParams,
        body: S,
    ) -> Result<Image>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        caller.require_auth()?;
        let compression = match p.compression.as_deref() {
            None | Some("") => {
                return Err(Error::invalid_param(
                    "compression",
                    FieldCode::Missing,
                    "missing \"compression\"",
                ));
            }
            Some(c) if !COMPRESSIONS.contains(&c) => {
                return Err(Error::invalid_param(
                    "compression",
                    FieldCode::Invalid,
                    format!(
                        "invalid compression \"{c}\" (must be one of {})",
                        COMPRESSIONS.join(", ")
                    ),
                ));
            }
            Some(c) => c.to_string(),
        };
        let stor = self.choose_stor(caller, p.storage.as_deref())?;
        if let Some(len) = p.content_length
            && len > self.max_file_size
        {
            return Err(Error::Upload(format!(
                "image file size, {len} (from Content-Length) exceeds the maximum allowed size, {}",
                self.max_file_size
            )));
        }
        let img = self.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        if img.activated {
            return Err(Error::ImageFilesImmutable(uuid));
        }
        let store = self.stores.by_stor(stor)?;
        let key = image_file_key(stor, &uuid);
        // Stream to a temporary object; checks run before it is committed.
        let mut pending = store.begin_write(&key).await?;
        let digests = ingest(&mut pending, body, self.max_file_size).await?;
        check_file(&digests, p.content_length, p.sha1.as_deref())?;
        let file = ImageFile {
            sha1: digests.sha1_hex(),
            size: digests.size,
            compression,
            dataset_guid: p.dataset_guid.filter(|g| !g.is_empty()),
            stor: stor.to_string(),
            content_md5: digests.md5_base64(),
            mtime: now_iso(),
        };
        // Commit and record under the image lock, re-checking activation.
        let _g = self.lock(uuid).await;
        let cur = self.get(caller, uuid).await?;
        if cur.activated {
            return Err(Error::ImageAlreadyActivated(uuid));
        }
        pending.commit().await?;
        let old: Vec<ImageFile> = cur.files.clone();
        let img = self
            .modify(caller, uuid, None, move |img| {
                img.files = vec![file];
                Ok(())
            })
            .await?;
        for f in old.iter().filter(|f| f.stor != stor) {
            if let Ok(s) = self.stores.by_stor(&f.stor) {
                let _ = s.delete(&image_file_key(&f.stor, &uuid)).await;
            }
        }
        Ok(img)
    }

    /// `?storage=`: operators only; default depends on the configuration.
    fn choose_stor(&self, caller: &Caller, storage: Option<&str>) -> Result<&'static str> {
        match storage {
            None | Some("") => Ok(self.default_stor),
            Some(_) if caller.account.is_some() || !caller.operator => Err(Error::invalid_param(
                "storage",
                FieldCode::NotAllowed,
                "Parameter cannot be specified by non-operators",
            )),
            Some("local") => Ok("local"),
            Some("manta") => Ok("manta"),
            Some(s) => Err(Error::invalid_param(
                "storage",
                FieldCode::Invalid,
                format!("invalid storage \"{s}\" (must be one of local, manta)"),
            )),
        }
    }

    /// GetImageFile: the image and its file at `index` (404 if none).
    pub async fn file(
        &self,
        caller: &Caller,
        uuid: Uuid,
        index: usize,
    ) -> Result<(Image, ImageFile)> {
        let img = self.get(caller, uuid).await?;
        let f = match img.files.get(index) {
            Some(f) => f.clone(),
            None if img.files.is_empty() => {
                return Err(Error::not_found(format!("image \"{uuid}\" has no file")));
            }
            None => {
                return Err(Error::not_found(format!(
                    "image \"{uuid}\" has no file at index {index}"
                )));
            }
        };
        Ok((img, f))
    }

    /// Open an image file's bytes (or a range of them).
    pub async fn open_file(
        &self,
        img: &Image,
        f: &ImageFile,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        Ok(self
            .stores
            .by_stor(&f.stor)?
            .get(&image_file_key(&f.stor, &img.uuid), range)
            .await?)
    }

    /// A URL the client may download an image file from directly for
    /// `ttl` (served as `application/octet-stream`), or None if its store
    /// cannot hand one out (local files).
    pub async fn file_url(
        &self,
        img: &Image,
        f: &ImageFile,
        ttl: std::time::Duration,
    ) -> Result<Option<String>> {
        Ok(self
            .stores
            .by_stor(&f.stor)?
            .presigned_get(
                &image_file_key(&f.stor, &img.uuid),
                ttl,
                Some("application/octet-stream"),
            )
            .await?)
    }

    /// AddImageIcon.
    pub async fn add_icon<S>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        p: AddIconParams,
        body: S,
    ) -> Result<Image>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        caller.require_auth()?;
        let ct = p.content_type.unwrap_or_default();
        if !matches!(ct.as_str(), "image/jpeg" | "image/png" | "image/gif") {
            return Err(Error::Upload(format!(
                "invalid content-type, {ct}, must be one of image/jpeg, image/png or image/gif"
            )));
        }
        if p.content_length.is_some_and(|l| l > MAX_ICON_SIZE) {
            return Err(Error::Upload(format!(
                "icon size exceeds the maximum allowed size, {MAX_ICON_SIZE} bytes"
            )));
        }
        let img = self.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        let store = &self.stores.local;
        let mut pending = store.begin_write(&image_icon_key("local", &uuid)).await?;
        let digests = ingest(&mut pending, body, MAX_ICON_SIZE).await?;
        check_file(&digests, p.content_length, p.sha1.as_deref()).map_err(|e| match e {
            Error::Download(m) => Error::Upload(m),
            e => e,
        })?;
        pending.commit().await?;
        let icon = Icon {
            sha1: digests.sha1_hex(),
            size: digests.size,
            content_type: ct,
            content_md5: digests.md5_base64(),
            mtime: now_iso(),
            stor: "local".into(),
        };
        self.modify(caller, uuid, None, move |img| {
            img.icon = Some(icon);
            Ok(())
        })
        .await
    }

    /// GetImageIcon: the image and its icon (404 if none).
    pub async fn icon(&self, caller: &Caller, uuid: Uuid) -> Result<(Image, Icon, ByteStream)> {
        let img = self.get(caller, uuid).await?;
        let icon = img
            .icon
            .clone()
            .ok_or_else(|| Error::not_found(format!("image \"{uuid}\" has no icon")))?;
        let stream = self
            .stores
            .by_stor(&icon.stor)?
            .get(&image_icon_key(&icon.stor, &uuid), None)
            .await?;
        Ok((img, icon, stream))
    }

    /// DeleteImageIcon.
    pub async fn delete_icon(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        let mut old = None;
        let img = {
            let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
            let slot2 = slot.clone();
            let img = self
                .modify(caller, uuid, None, move |img| {
                    *slot2.lock().map_err(|_| Error::internal("poisoned"))? = img.icon.take();
                    Ok(())
                })
                .await?;
            if let Ok(mut s) = slot.lock() {
                old = s.take();
            }
            img
        };
        if let Some(icon) = old
            && let Ok(store) = self.stores.by_stor(&icon.stor)
        {
            let _ = store.delete(&image_icon_key(&icon.stor, &uuid)).await;
        }
        Ok(img)
    }
}

/// AddImageFile's after-the-stream checks (IMGAPI answers 400 Download).
fn check_file(d: &Digests, content_length: Option<u64>, sha1: Option<&str>) -> Result<()> {
    if d.size == 0 {
        return Err(Error::Download(
            "image file size is 0 bytes, empty files are not allowed".into(),
        ));
    }
    if let Some(l) = content_length
        && l != d.size
    {
        return Err(Error::Download(format!(
            "\"Content-Length\" header, {l}, does not match uploaded size, {}",
            d.size
        )));
    }
    if let Some(s) = sha1.filter(|s| !s.is_empty())
        && !s.eq_ignore_ascii_case(&d.sha1_hex())
    {
        return Err(Error::Download(format!(
            "\"sha1\" hash, {s}, does not match the uploaded file sha1 hash, {}",
            d.sha1_hex()
        )));
    }
    Ok(())
}

fn check_if_match(if_match: Option<&str>, img: &Image) -> Result<()> {
    let Some(m) = if_match else { return Ok(()) };
    let etag = img.etag();
    let ok = m
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag);
    if ok {
        Ok(())
    } else {
        Err(Error::PreconditionFailed(format!(
            "if-match '{m}' didn't match etag '{etag}'"
        )))
    }
}

fn not_found(uuid: Uuid) -> Error {
    Error::not_found(format!("image {uuid} was not found"))
}

/// An `origin` must be an image the caller can see; one it cannot see is
/// answered exactly as a missing one (no existence oracle).
pub fn check_origin(c: &rusqlite::Connection, caller: &Caller, origin: Uuid) -> Result<()> {
    match q::get(c, origin)? {
        Some(o) if caller.can_see(&o) => Ok(()),
        _ => Err(Error::OriginDoesNotExist(origin)),
    }
}

fn acl_too_large(n: usize) -> Error {
    Error::invalid_param(
        "acl",
        FieldCode::Invalid,
        format!("an image \"acl\" may hold at most {MAX_ACL} accounts ({n} given or resulting)"),
    )
}

/// Operator `state` updates.
fn apply_state(img: &mut Image, s: State, lifespan_days: u64) -> Result<()> {
    match s {
        State::Creating | State::Failed => {
            img.placeholder = Some(if s == State::Failed {
                Placeholder::Failed
            } else {
                Placeholder::Creating
            });
            img.activated = false;
            let exp = chrono::Utc::now() + chrono::Duration::days(lifespan_days as i64);
            img.expires_at = Some(exp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
        State::Unactivated => {
            img.placeholder = None;
            img.activated = false;
            img.expires_at = None;
        }
        State::Active | State::Disabled => {
            if img.files.is_empty() {
                return Err(Error::NoActivationNoFile(img.uuid));
            }
            img.placeholder = None;
            img.activated = true;
            img.disabled = s == State::Disabled;
            img.expires_at = None;
            if img.published_at.is_none() {
                img.published_at = Some(now_iso());
            }
        }
    }
    Ok(())
}

/// Check CreateImage/AdminImportImage keys, validate, and build an
/// unactivated image. A field given as `null` is invalid like any other
/// value of the wrong type (IMGAPI does not read `null` as "not given").
fn build_image(mut body: Map<String, Value>, uuid: Uuid, import: bool) -> Result<Image> {
    body.remove("files");
    body.remove("state");
    body.remove("channels");
    // The zvol fields of another type are extra parameters too, as in
    // IMGAPI (which only takes them from a zvol's manifest).
    let zvol = body.get("type").and_then(Value::as_str) == Some("zvol");
    let extra: Vec<String> = body
        .keys()
        .filter(|k| {
            let k = k.as_str();
            let known = CREATE_KEYS.contains(&k) || (import && IMPORT_EXTRA_KEYS.contains(&k));
            !known || (!zvol && ZVOL_FIELDS.contains(&k))
        })
        .cloned()
        .collect();
    if !extra.is_empty() {
        return Err(Error::InvalidParameter {
            message: format!(
                "invalid extra parameters: {}",
                extra
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            errors: extra
                .iter()
                .map(|k| FieldError::new(k.clone(), FieldCode::Invalid))
                .collect(),
        });
    }
    normalize(&mut body);
    body.insert("uuid".into(), Value::String(uuid.to_string()));
    body.entry("public").or_insert(Value::Bool(false));
    body.entry("disabled").or_insert(Value::Bool(false));
    let mut errs = validate_manifest(&body, Ctx::default());
    // An icon is added with AddImageIcon, never in a manifest.
    if body.contains_key("icon") {
        errs.push(FieldError::msg(
            "icon",
            FieldCode::Invalid,
            "\"icon\" cannot be set: use AddImageIcon",
        ));
    }
    // An origin that is a string but not a UUID names no image: IMGAPI
    // answers it as OriginDoesNotExist once the rest is valid.
    let bad_origin = body
        .get("origin")
        .and_then(Value::as_str)
        .is_some_and(|o| !is_uuid(o));
    if bad_origin {
        errs.retain(|e| e.field != "origin");
    }
    if !errs.is_empty() {
        return Err(Error::validation(errs));
    }
    if bad_origin {
        return Err(Error::OriginDoesNotExist(Uuid::nil()));
    }
    body.remove("icon");
    body.insert("activated".into(), Value::Bool(false));
    serde_json::from_value(Value::Object(body)).map_err(|e| {
        // Validation should have refused whatever does not deserialize.
        tracing::warn!(error = %e, "a validated manifest does not deserialize");
        Error::validation(vec![FieldError::msg(
            "manifest",
            FieldCode::Invalid,
            "invalid image data",
        )])
    })
}

/// Delete expired placeholders (failed/creating) every 30 minutes.
pub async fn reap_placeholders_forever(images: Images) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1800));
    loop {
        tick.tick().await;
        if let Err(e) = images.reap_placeholders().await {
            tracing::warn!(error = %e, "placeholder reaper failed");
        }
    }
}

impl Images {
    /// Delete placeholders whose `expires_at` has passed; returns how many.
    pub async fn reap_placeholders(&self) -> Result<usize> {
        let now = now_iso();
        let gone = self
            .db
            .write(move |c| {
                let mut gone = Vec::new();
                for u in q::expired_placeholders(c, &now)? {
                    if let Some(img) = q::get(c, u)? {
                        q::delete(c, u)?;
                        gone.push(img);
                    }
                }
                Ok::<_, Error>(gone)
            })
            .await?;
        for img in &gone {
            tracing::info!(image.uuid = %img.uuid, "reaped expired placeholder");
            self.remove_stored(img).await;
        }
        Ok(gone.len())
    }
}

/// Stream `src_key` of `src` into `dst_key` of `dst`, checking the bytes
/// against `expect` (size, sha1, md5) before the copy becomes visible.
async fn copy_verified(
    src: &crate::store::Store,
    src_key: &str,
    dst: &crate::store::Store,
    dst_key: &str,
    size: u64,
    sha1: &str,
    md5: &str,
) -> Result<Digests> {
    let body = src.get(src_key, None).await?;
    let body = futures_util::TryStreamExt::map_err(body, Error::from);
    let mut pending = dst.begin_write(dst_key).await?;
    let d = ingest(&mut pending, body, u64::MAX).await?;
    if d.size != size {
        return Err(Error::Download(format!(
            "downloaded {} bytes, expected {size}",
            d.size
        )));
    }
    if d.sha1_hex() != sha1 || d.md5_base64() != md5 {
        return Err(Error::Download(format!(
            "downloaded Content-MD5 is {}, expected {md5}",
            d.md5_base64()
        )));
    }
    pending.commit().await?;
    Ok(d)
}

impl Images {
    /// AdminChangeImageStor: move an image's file to the `local` or `manta`
    /// store, verified on the way; a no-op if it is there already.
    pub async fn change_stor(
        &self,
        caller: &Caller,
        uuid: Uuid,
        stor: Option<&str>,
    ) -> Result<Image> {
        caller.require_operator()?;
        let stor = match stor {
            None | Some("") => {
                return Err(Error::ValidationFailed {
                    message: "missing \"stor\"".into(),
                    errors: vec![FieldError::new("stor", FieldCode::MissingParameter)],
                });
            }
            Some(s @ ("local" | "manta")) => s.to_string(),
            Some(s) => {
                return Err(Error::ValidationFailed {
                    message: format!("invalid stor \"{s}\" (must be local or manta)"),
                    errors: vec![FieldError::new("stor", FieldCode::Invalid)],
                });
            }
        };
        let _g = self.lock(uuid).await;
        let img = self.get(caller, uuid).await?;
        if img.files.len() > 1 {
            return Err(Error::NotImplemented(
                "changing the stor of multi-file images is not implemented".into(),
            ));
        }
        let Some(f) = img.files.first().cloned() else {
            return Ok(img); // nothing stored yet
        };
        if f.stor == stor {
            return Ok(img);
        }
        let (from, to) = (self.stores.by_stor(&f.stor)?, self.stores.by_stor(&stor)?);
        let (from_key, to_key) = (image_file_key(&f.stor, &uuid), image_file_key(&stor, &uuid));
        copy_verified(
            from,
            &from_key,
            to,
            &to_key,
            f.size,
            &f.sha1,
            &f.content_md5,
        )
        .await?;
        let new_stor = stor.clone();
        let img = self
            .modify(caller, uuid, None, move |img| {
                if let Some(f) = img.files.first_mut() {
                    f.stor = new_stor;
                }
                Ok(())
            })
            .await?;
        if let Err(e) = from.delete(&from_key).await {
            tracing::warn!(image.uuid = %uuid, error = %e, "could not remove the old copy after change-stor");
        }
        tracing::info!(image.uuid = %uuid, from = %f.stor, to = %stor, "changed image stor");
        Ok(img)
    }

    /// ExportImage: write the manifest and the file under `target` (a
    /// manta-store key the caller may write; a trailing `/` names a
    /// directory). Returns (image key, manifest key).
    pub async fn export(
        &self,
        caller: &Caller,
        uuid: Uuid,
        target: &str,
        dir: bool,
    ) -> Result<(String, String)> {
        let img = self.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        let f = img
            .files
            .first()
            .cloned()
            .ok_or_else(|| Error::not_found(format!("image \"{uuid}\" has no file")))?;
        let ext = match f.compression.as_str() {
            "bzip2" => ".zfs.bz2",
            "gzip" => ".zfs.gz",
            "xz" => ".zfs.xz",
            _ => ".zfs",
        };
        let base = if dir {
            format!(
                "{}/{}",
                target.trim_end_matches('/'),
                export_stem(&img.name, &img.version)
            )
        } else {
            target.to_string()
        };
        let (file_key, manifest_key) = (format!("{base}{ext}"), format!("{base}.imgmanifest"));
        // The names must be valid storage paths (a long last segment plus
        // the suffix may not be).
        for k in [&file_key, &manifest_key] {
            crate::store::namespace::parse(&format!("/{k}")).map_err(|m| {
                Error::invalid_param(
                    "manta_path",
                    FieldCode::Invalid,
                    format!("cannot export to this path: {m}"),
                )
            })?;
        }
        let manta = &self.stores.manta;
        let src = self.stores.by_stor(&f.stor)?;
        copy_verified(
            src,
            &image_file_key(&f.stor, &uuid),
            manta,
            &file_key,
            f.size,
            &f.sha1,
            &f.content_md5,
        )
        .await
        .map_err(as_manta_path)?;
        let manifest =
            serde_json::to_vec_pretty(&img.render(crate::manifest::RenderOpts::default()))
                .map_err(Error::internal)?;
        let mut w = manta
            .begin_write(&manifest_key)
            .await
            .map_err(as_manta_path)?;
        w.write(Bytes::from(manifest)).await?;
        w.commit().await.map_err(as_manta_path)?;
        Ok((file_key, manifest_key))
    }
}

/// The file name stem of an exported image: `{name}-{version}` with every
/// character but ASCII letters, digits, `.`, `_`, `+` and `-` replaced by
/// `_`, no leading `.`, at most 200 bytes (room for the suffix in a
/// 255-byte name).
fn export_stem(name: &str, version: &str) -> String {
    let mut stem: String = format!("{name}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    stem.truncate(200);
    stem
}

/// A store's "path cannot be used" error, named for ExportImage's parameter.
fn as_manta_path(e: impl Into<Error>) -> Error {
    match e.into() {
        Error::InvalidParameter {
            message,
            mut errors,
        } => {
            for f in &mut errors {
                if f.field == "path" {
                    f.field = "manta_path".into();
                }
            }
            Error::InvalidParameter { message, errors }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_stems_are_one_safe_segment() {
        assert_eq!(export_stem("my image/x", "1.0//2"), "my_image_x-1.0__2");
        assert_eq!(export_stem(".hidden", "1"), "_hidden-1");
        let long = export_stem(&"é".repeat(300), "1");
        assert!(long.len() <= 200 && !long.contains('/'));
    }
}
