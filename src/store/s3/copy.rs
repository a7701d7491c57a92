//! Server-side copies within the bucket, conditioned on the ETag the
//! caller verified: one CopyObject up to S3's 5 GiB limit, else a
//! multipart upload of UploadPartCopy parts (aborted if a part fails).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::CompletedPart;

use super::{Resp, S3Store, sdk_err};
use crate::store::error::{Result, StoreError};

/// Objects above this are copied with UploadPartCopy (S3's CopyObject limit).
const MAX_SINGLE_COPY: u64 = 5 << 30;

/// The parts of a multipart copy (1 GiB).
const COPY_PART: u64 = 1 << 30;

/// The object a copy reads: its key (as errors name it), its source as
/// the copy requests name it (bucket and prefixed key), its size, and the
/// ETag it must still have.
struct CopySource<'a> {
    from: &'a str,
    src: String,
    size: u64,
    etag: Option<&'a str>,
}

impl S3Store {
    /// Server-side copy `from` → `to`, only if `from` still has `etag`.
    pub async fn copy(&self, from: &str, to: &str, etag: Option<&str>) -> Result<()> {
        let size = self
            .head(from)
            .await?
            .ok_or_else(|| {
                tracing::debug!(key = from, "copy source not found");
                StoreError::CopySourceNotFound {
                    key: from.to_string(),
                }
            })?
            .size;
        let source = CopySource {
            from,
            src: format!("{}/{}", self.bucket, self.k(from)?),
            size,
            etag,
        };
        if size <= MAX_SINGLE_COPY {
            return self.copy_whole(&source, to).await;
        }
        self.copy_multipart(&source, to).await
    }

    /// Copy `source` to `to` in one CopyObject.
    async fn copy_whole(&self, source: &CopySource<'_>, to: &str) -> Result<()> {
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.k(to)?)
            .copy_source(&source.src);
        if let Some(t) = source.etag {
            req = req.copy_source_if_match(t);
        }
        req.customize()
            .config_override(self.long_request())
            .send()
            .await
            .map_err(|e| copy_err(e, source.from))?;
        Ok(())
    }

    /// Copy `source` to `to` as a multipart upload of [`COPY_PART`] parts,
    /// aborted if a part fails.
    async fn copy_multipart(&self, source: &CopySource<'_>, to: &str) -> Result<()> {
        let key = self.k(to)?;
        let up = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(sdk_err)?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let parts = match self.copy_parts(source, &key, &id).await {
            Ok(parts) => parts,
            Err(e) => {
                let _ = self.abort_multipart(to, &id).await;
                return Err(e);
            }
        };
        self.send_complete(&key, &id, parts).await.map_err(sdk_err)
    }

    /// Copy each [`COPY_PART`] of `source` into the multipart upload `id`
    /// of the prefixed `key`, in order; the parts copied.
    async fn copy_parts(
        &self,
        source: &CopySource<'_>,
        key: &str,
        id: &str,
    ) -> Result<Vec<CompletedPart>> {
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut n = 1;
        while start < source.size {
            let end = (start + COPY_PART).min(source.size) - 1;
            let mut req = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .copy_source(&source.src)
                .copy_source_range(format!("bytes={start}-{end}"));
            if let Some(t) = source.etag {
                req = req.copy_source_if_match(t);
            }
            let r = req
                .customize()
                .config_override(self.long_request())
                .send()
                .await
                .map_err(|e| copy_err(e, source.from))?;
            let tag = r
                .copy_part_result()
                .and_then(|c| c.e_tag())
                .unwrap_or("")
                .to_string();
            parts.push(CompletedPart::builder().part_number(n).e_tag(tag).build());
            start = end + 1;
            n += 1;
        }
        Ok(parts)
    }
}

/// Map an error of a conditioned copy: a failed precondition (the source
/// changed since it was verified) is an internal error that says so, the
/// rest as `sdk_err`.
fn copy_err<E>(e: SdkError<E, Resp>, from: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(se) = &e
        && (se.err().code() == Some("PreconditionFailed") || se.raw().status().as_u16() == 412)
    {
        return StoreError::internal(format!("{from} changed after it was verified"));
    }
    sdk_err(e)
}
