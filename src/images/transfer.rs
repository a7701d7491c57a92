//! Moving an image's bytes: AdminChangeImageStor and ExportImage.

use super::*;

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
            Some(s) => StoreName::stor(s).ok_or_else(|| Error::ValidationFailed {
                message: format!("invalid stor \"{s}\" (must be local or manta)"),
                errors: vec![FieldError::new("stor", FieldCode::Invalid)],
            })?,
        };
        let _g = self.lock(uuid).await?;
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
        let (from, to) = (self.stores.get(f.stor), self.stores.get(stor));
        let (from_key, to_key) = (image_file_key(f.stor, &uuid), image_file_key(stor, &uuid));
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
        let img = self
            .modify(caller, uuid, None, move |img| {
                if let Some(f) = img.files.first_mut() {
                    f.stor = stor;
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
        let src = self.stores.get(f.stor);
        copy_verified(
            src,
            &image_file_key(f.stor, &uuid),
            manta,
            &file_key,
            f.size,
            &f.sha1,
            &f.content_md5,
        )
        .await
        .map_err(as_manta_path)?;
        self.downloaded(uuid);
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
