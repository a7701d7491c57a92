//! CloneImage: an account's own copy of an image shared with it through
//! `acl`, with the chain of origins up to the first operator image. The
//! store copies the files itself (never re-read nor re-hashed), and every
//! row of the chain is inserted in one transaction: all or nothing.

use super::*;

/// Most images in a cloned chain (IMGAPI's `MAX_ORIGIN_DEPTH`).
pub const MAX_ORIGIN_DEPTH: usize = 100;

impl Images {
    /// CloneImage: `uuid` copied for the caller's account, which must be in
    /// its `acl`; refusals in IMGAPI's order (visibility 404, account,
    /// not active, not shared, docker). Returns the clone of `uuid`.
    pub async fn clone_image(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        caller.require_auth()?;
        // Held to the end: the image cannot be deleted meanwhile, nor can
        // its origins (they have it as a dependent).
        let _g = self.lock(uuid).await?;
        let img = self.get(caller, uuid).await?;
        let account = caller.account.ok_or_else(|| {
            Error::invalid_param(
                "account",
                FieldCode::Invalid,
                "invalid \"account\": not a UUID: \"undefined\"",
            )
        })?;
        check_cloneable(&img, account)?;

        let chain = self.db.read(move |c| chain_of(c, img)).await?;
        let clones = plan(&chain, account, self.clock.timestamp());

        // The files first, so that no row appears without its bytes.
        if let Err(e) = self.copy_files(&chain.images, &clones).await {
            self.remove_clones(&clones).await;
            return Err(e);
        }
        let rows = clones.clone();
        // The whole chain at once: its images and bytes together.
        let entry = crate::space::Entry {
            owner: account,
            bytes: clones
                .iter()
                .map(Image::stored_bytes)
                .fold(0, u64::saturating_add),
            images: clones.len() as u64,
            what: format!("cloning image {uuid} ({} images)", clones.len()),
        };
        let (quotas, who) = (self.quotas.clone(), caller.clone());
        let done = self
            .db
            .write(move |c| {
                quotas.admit(c, &who, &entry)?;
                // What was checked above still holds (an ACL change does
                // not take the image's lock).
                match c.image_get(uuid)? {
                    Some(img) => check_cloneable(&img, account)?,
                    None => return Err(not_found(uuid)),
                }
                for img in &rows {
                    c.image_insert(img).map_err(Error::uuid_taken(img.uuid))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = done {
            self.remove_clones(&clones).await;
            return Err(e);
        }
        for c in &clones {
            tracing::info!(image.uuid = %uuid, clone.uuid = %c.uuid, account = %account, "image cloned");
        }
        clones
            .into_iter()
            .last()
            .ok_or_else(|| Error::internal("empty clone chain"))
    }

    /// Copy the file and the icon of each source to its clone's keys, in
    /// the same store, by the store itself.
    async fn copy_files(&self, sources: &[Image], clones: &[Image]) -> Result<()> {
        for (src, dst) in sources.iter().zip(clones) {
            for f in &src.files {
                let store = self.stores.get(f.stor);
                store
                    .clone_object(
                        &image_file_key(f.stor, &src.uuid),
                        &image_file_key(f.stor, &dst.uuid),
                    )
                    .await
                    .map_err(|e| copy_error(e, src.uuid))?;
            }
            if let Some(icon) = &src.icon {
                let store = self.stores.get(icon.stor);
                store
                    .clone_object(
                        &image_icon_key(icon.stor, &src.uuid),
                        &image_icon_key(icon.stor, &dst.uuid),
                    )
                    .await
                    .map_err(|e| copy_error(e, src.uuid))?;
            }
        }
        Ok(())
    }

    /// Undo a clone that failed: every copied object (absent ones are fine).
    async fn remove_clones(&self, clones: &[Image]) {
        for c in clones {
            self.remove_stored(c).await;
        }
    }
}

/// A source object that is gone is a store fault here (the image's row
/// says it is there): internal, never a 404 of the request.
fn copy_error(e: crate::store::StoreError, image: Uuid) -> Error {
    match e {
        crate::store::StoreError::CopySourceNotFound { .. } => {
            Error::internal(format!("a stored object of image {image} is missing"))
        }
        e => e.into(),
    }
}

/// IMGAPI's checks of the image itself, in its order.
fn check_cloneable(img: &Image, account: Uuid) -> Result<()> {
    if !img.activated {
        return Err(Error::ValidationFailed {
            message: "image is not active".into(),
            errors: vec![FieldError::new("active", FieldCode::Invalid)],
        });
    }
    if !img.acl.contains(&account) {
        return Err(Error::ImageNotShared {
            account,
            image: img.uuid,
        });
    }
    if img.type_ == "docker" {
        return Err(Error::ValidationFailed {
            message: "docker images cannot be cloned".into(),
            errors: vec![FieldError::new("type", FieldCode::Invalid)],
        });
    }
    if img.files.len() > 1 {
        return Err(Error::NotImplemented(
            "cannot clone images with multiple files".into(),
        ));
    }
    Ok(())
}

/// The images to clone, base first (the image asked for last), and the
/// operator origin the base keeps, if the chain reaches one.
#[derive(Debug)]
struct Chain {
    images: Vec<Image>,
    kept_origin: Option<Uuid>,
}

/// Follow `img`'s origins up to the first one owned by an operator (or by
/// nobody, the nil owner), which is kept as it is.
fn chain_of(c: &dyn crate::db::Meta, img: Image) -> Result<Chain> {
    let mut next = img.origin;
    let mut images = vec![img];
    while let Some(o) = next {
        let origin = c.image_get(o)?.ok_or_else(|| not_found(o))?;
        if origin.owner.is_nil() || c.account_by_uuid(origin.owner)?.is_some_and(|a| a.operator) {
            return Ok(Chain {
                images: images.into_iter().rev().collect(),
                kept_origin: Some(o),
            });
        }
        next = origin.origin;
        images.push(origin);
        if next.is_some() && images.len() >= MAX_ORIGIN_DEPTH {
            return Err(Error::internal(format!(
                "Origin chain too long, exceeds {MAX_ORIGIN_DEPTH} images"
            )));
        }
    }
    Ok(Chain {
        images: images.into_iter().rev().collect(),
        kept_origin: None,
    })
}

/// The clones of `chain`: new uuids, owned by `account`, no `acl`,
/// published now, active; each points at the previous one (the base at the
/// kept origin), and all but the last are disabled so that only the image
/// asked for is provisionable. Files keep their size and digests.
fn plan(chain: &Chain, account: Uuid, now: crate::clock::Timestamp) -> Vec<Image> {
    let mut origin = chain.kept_origin;
    let last = chain.images.len().saturating_sub(1);
    let mut out = Vec::with_capacity(chain.images.len());
    for (i, src) in chain.images.iter().enumerate() {
        let mut img = src.clone();
        img.uuid = Uuid::new_v4();
        img.owner = account;
        img.acl = vec![];
        img.published_at = Some(now.into());
        img.origin = origin;
        img.activated = true;
        img.placeholder = None;
        img.error = None;
        img.expires_at = None;
        img.reserved_bytes = None;
        if i < last {
            img.disabled = true;
        }
        origin = Some(img.uuid);
        out.push(img);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(uuid: Uuid, owner: Uuid, origin: Option<Uuid>) -> Image {
        serde_json::from_value(serde_json::json!({
            "v": 2, "uuid": uuid, "owner": owner, "name": "n", "version": "1",
            "activated": true, "disabled": false, "public": false, "type": "zone-dataset",
            "os": "smartos", "origin": origin, "acl": [Uuid::from_u128(9)],
            "published_at": "2020-01-01T00:00:00.000Z",
        }))
        .unwrap()
    }

    #[test]
    fn plan_links_the_clones_and_disables_all_but_the_last() {
        let (op, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let chain = Chain {
            images: vec![
                image(a, Uuid::from_u128(7), Some(op)),
                image(b, Uuid::from_u128(7), Some(a)),
            ],
            kept_origin: Some(op),
        };
        let acct = Uuid::from_u128(9);
        let now = crate::clock::Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap();
        let c = plan(&chain, acct, now);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].origin, Some(op));
        assert_eq!(c[1].origin, Some(c[0].uuid));
        assert!(c[0].disabled && !c[1].disabled);
        for x in &c {
            assert_eq!(x.owner, acct);
            assert!(x.acl.is_empty());
            assert!(x.uuid != a && x.uuid != b);
            assert_eq!(x.published_at.as_deref(), Some("2026-01-02T03:04:05.678Z"));
        }
    }
}
