//! Image files and icons: AddImageFile, GetImageFile (bytes or a presigned
//! URL), icons, and removing what an image stored.

use super::*;
use crate::store::{SessionState, StoreName};

impl Images {
    /// Remove an image's file and icon from their stores (errors only logged:
    /// the record is already gone).
    pub async fn remove_stored(&self, img: &Image) {
        for f in &img.files {
            let store = self.stores.get(f.stor);
            if let Err(e) = store.delete(&image_file_key(f.stor, &img.uuid)).await {
                tracing::warn!(image.uuid = %img.uuid, error = %e, "could not remove image file");
            }
        }
        if let Some(icon) = &img.icon {
            let store = self.stores.get(icon.stor);
            if let Err(e) = store.delete(&image_icon_key(icon.stor, &img.uuid)).await {
                tracing::warn!(image.uuid = %img.uuid, error = %e, "could not remove icon");
            }
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
        let compression = check_compression(p.compression.as_deref())?;
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
        // The bytes announced must fit the quota before any is read.
        if let Some(len) = p.content_length {
            self.admit_before(caller, &img, with_file_of(&img, len, stor))
                .await?;
        }
        let store = self.stores.get(stor);
        let key = image_file_key(stor, &uuid);
        // Stream to a temporary object; checks run before it is committed.
        let mut pending = store.begin_write(&key).await?;
        let digests = ingest(&mut pending, body, self.max_file_size).await?;
        check_file(&digests, p.content_length, p.sha1.as_deref())?;
        let file = file_record(&digests, compression, p.dataset_guid, stor, &self.clock);
        // Commit and record under the image lock, re-checking activation.
        let _g = self.lock(uuid).await?;
        let cur = self.get(caller, uuid).await?;
        if cur.activated {
            return Err(Error::ImageAlreadyActivated(uuid));
        }
        self.admit_before(caller, &cur, with_file_of(&cur, file.size, stor))
            .await?;
        pending.commit().await?;
        self.record_file(caller, uuid, cur, file).await
    }

    /// Would a file of `size` bytes for `uuid` fit its owner's quotas? For
    /// a caller about to fetch the bytes from elsewhere (an import), so
    /// that an import over quota fails before its transfer, not after.
    pub async fn admit_file(&self, caller: &Caller, uuid: Uuid, size: u64) -> Result<()> {
        let img = self.get(caller, uuid).await?;
        let stor = img.files.first().map_or(self.default_stor, |f| f.stor);
        self.admit_before(caller, &img, with_file_of(&img, size, stor))
            .await
    }

    /// Where AddImageFile with `?storage=` puts the file: its `stor` (for a
    /// caller that streams the bytes into a store session itself, then
    /// calls [`Images::add_file_from_session`]).
    pub fn file_target(&self, caller: &Caller, storage: Option<&str>) -> Result<StoreName> {
        caller.require_auth()?;
        self.choose_stor(caller, storage)
    }

    /// AddImageFile for bytes already in a store session (staged in a
    /// directory store, resumable) and already hashed once by the caller:
    /// `digests` are the verified digests of every byte of the session. The
    /// same checks as [`Images::add_file`] run on them, then the session is
    /// completed at the image's key (a rename when it is staged in the
    /// image's own store) and recorded, without reading the bytes again.
    /// `stor` comes from [`Images::file_target`]. On error the session is
    /// left as it is (the caller owns it).
    pub async fn add_file_from_session(
        &self,
        caller: &Caller,
        uuid: Uuid,
        p: AddFileParams,
        stor: StoreName,
        session: &SessionState,
        digests: &Digests,
    ) -> Result<Image> {
        caller.require_auth()?;
        let compression = check_compression(p.compression.as_deref())?;
        if digests.size > self.max_file_size {
            return Err(Error::Upload(format!(
                "image file size, {} exceeds the maximum allowed size, {}",
                digests.size, self.max_file_size
            )));
        }
        if session.offset != digests.size {
            return Err(Error::internal("session and digests differ in size"));
        }
        check_file(digests, p.content_length, p.sha1.as_deref())?;
        let img = self.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        if img.activated {
            return Err(Error::ImageFilesImmutable(uuid));
        }
        let file = file_record(digests, compression, p.dataset_guid, stor, &self.clock);
        let key = image_file_key(stor, &uuid);
        let _g = self.lock(uuid).await?;
        let cur = self.get(caller, uuid).await?;
        if cur.activated {
            return Err(Error::ImageAlreadyActivated(uuid));
        }
        self.admit_before(caller, &cur, with_file_of(&cur, file.size, stor))
            .await?;
        let done = self
            .stores
            .complete_session(session, stor, Some(&key))
            .await?;
        if done.store != stor || done.key != key {
            // A multipart session completes at its own key: not for this.
            return Err(Error::internal(
                "a session completed away from the image's key",
            ));
        }
        if let Some((s, k)) = &done.leftover
            && let Err(e) = self.stores.get(*s).delete(k).await
        {
            tracing::warn!(image.uuid = %uuid, error = %e, "could not remove staged bytes");
        }
        self.record_file(caller, uuid, cur, file).await
    }

    /// Record `file` as the image's only file (under the image lock, its
    /// bytes committed), removing a previous file kept in another store.
    async fn record_file(
        &self,
        caller: &Caller,
        uuid: Uuid,
        cur: Image,
        file: ImageFile,
    ) -> Result<Image> {
        let stor = file.stor;
        let old: Vec<ImageFile> = cur.files.clone();
        let recorded = self
            .modify(caller, uuid, None, move |img| {
                img.files = vec![file];
                Ok(())
            })
            .await;
        let img = match recorded {
            Ok(img) => img,
            Err(e) => {
                // Refused (a quota another request filled since the check
                // before the commit): the new bytes go. If they replaced
                // the file of this store, its record goes too (the bytes
                // it named are gone): the image is left without a file,
                // never with a record of other bytes.
                let _ = self
                    .stores
                    .get(stor)
                    .delete(&image_file_key(stor, &uuid))
                    .await;
                if old.iter().any(|f| f.stor == stor) {
                    let cleared = self
                        .modify(caller, uuid, None, move |img| {
                            img.files.retain(|f| f.stor != stor);
                            Ok(())
                        })
                        .await;
                    if let Err(e2) = cleared {
                        tracing::warn!(image.uuid = %uuid, error = %e2, "could not clear a replaced file's record");
                    }
                }
                return Err(e);
            }
        };
        for f in old.iter().filter(|f| f.stor != stor) {
            let s = self.stores.get(f.stor);
            let _ = s.delete(&image_file_key(f.stor, &uuid)).await;
        }
        Ok(img)
    }

    /// `?storage=`: operators only; default depends on the configuration.
    fn choose_stor(&self, caller: &Caller, storage: Option<&str>) -> Result<StoreName> {
        match storage {
            None | Some("") => Ok(self.default_stor),
            Some(_) if caller.account.is_some() || !caller.operator => Err(Error::invalid_param(
                "storage",
                FieldCode::NotAllowed,
                "Parameter cannot be specified by non-operators",
            )),
            Some(s) => StoreName::stor(s).ok_or_else(|| {
                Error::invalid_param(
                    "storage",
                    FieldCode::Invalid,
                    format!("invalid storage \"{s}\" (must be one of local, manta)"),
                )
            }),
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

    /// Open an image file's bytes (or a range of them); a download is
    /// counted when the file's last byte goes out.
    pub async fn open_file(
        &self,
        img: &Image,
        f: &ImageFile,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        // The whole file is a range too: a store may read a large one in
        // parts.
        let bytes = range.clone().unwrap_or(0..f.size);
        let stream = self
            .stores
            .get(f.stor)
            .get_sealed(&image_file_key(f.stor, &img.uuid), Some(bytes))
            .await?;
        Ok(self.count_at_end(img.uuid, range, f.size, stream))
    }

    /// A URL the client may download an image file from directly for
    /// `ttl` (served as `application/octet-stream`), or None if its store
    /// cannot hand one out (local files). Handing it out counts as a
    /// download when `count` (not for HEAD).
    pub async fn file_url(
        &self,
        img: &Image,
        f: &ImageFile,
        ttl: std::time::Duration,
        count: bool,
    ) -> Result<Option<String>> {
        let url = self
            .stores
            .get(f.stor)
            .presigned_get(
                &image_file_key(f.stor, &img.uuid),
                ttl,
                Some("application/octet-stream"),
            )
            .await?;
        // The client was handed the file: a download.
        if count && url.is_some() {
            self.downloaded(img.uuid);
        }
        Ok(url)
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
        // One node keeps icons in its own directory; a cluster keeps them
        // in the store every node reads.
        let stor = if self.db.is_shared() {
            StoreName::Manta
        } else {
            StoreName::Local
        };
        let store = self.stores.get(stor);
        let mut pending = store.begin_write(&image_icon_key(stor, &uuid)).await?;
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
            mtime: self.clock.timestamp().into(),
            stor,
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
            .get(icon.stor)
            .get_sealed(&image_icon_key(icon.stor, &uuid), None)
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
        if let Some(icon) = old {
            let store = self.stores.get(icon.stor);
            let _ = store.delete(&image_icon_key(icon.stor, &uuid)).await;
        }
        Ok(img)
    }
}

/// AddImageFile's `compression` (required, one of IMGAPI's).
fn check_compression(c: Option<&str>) -> Result<String> {
    match c {
        None | Some("") => Err(Error::invalid_param(
            "compression",
            FieldCode::Missing,
            "missing \"compression\"",
        )),
        Some(c) if !COMPRESSIONS.contains(&c) => Err(Error::invalid_param(
            "compression",
            FieldCode::Invalid,
            format!(
                "invalid compression \"{c}\" (must be one of {})",
                COMPRESSIONS.join(", ")
            ),
        )),
        Some(c) => Ok(c.to_string()),
    }
}

/// The file record of verified bytes.
fn file_record(
    d: &Digests,
    compression: String,
    dataset_guid: Option<String>,
    stor: StoreName,
    clock: &crate::clock::Clock,
) -> ImageFile {
    ImageFile {
        sha1: d.sha1_hex(),
        size: d.size,
        compression,
        dataset_guid: dataset_guid.filter(|g| !g.is_empty()),
        stor,
        content_md5: d.md5_base64(),
        mtime: clock.timestamp().into(),
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

/// `img` with one file of `size` bytes in `stor` in place of its files (what
/// a quota check weighs before the file is stored).
fn with_file_of(img: &Image, size: u64, stor: StoreName) -> Image {
    let mut next = img.clone();
    next.files = vec![ImageFile {
        sha1: String::new(),
        size,
        compression: String::new(),
        dataset_guid: None,
        stor,
        content_md5: String::new(),
        mtime: String::new(),
    }];
    next
}
