//! A store in an S3-compatible bucket (aws-sdk-s3): keys live under the
//! configured prefix; writes are multipart uploads with bounded memory
//! (part size x parts in flight), completed on commit and aborted when
//! dropped; reads stream with Range passed through; copies are server-side
//! and conditioned on the ETag the caller verified; downloads may be
//! handed to clients as presigned GET URLs.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::error::{Result, StoreError};
use super::{ByteStream, ObjectMeta, valid_key};
use crate::config::S3Config;

mod copy;
mod get_ahead;
mod write;

pub use write::{PartSender, PendingS3Write};

/// Per-attempt limit for requests whose work grows with the object, not the
/// request (a server-side copy of up to 5 GiB, completing a multipart upload
/// of thousands of parts): the store answers only when it is done.
const LONG_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// An S3 bucket (and key prefix) as a store.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    parts_in_flight: usize,
    connect_timeout: Duration,
    tee_slots: Arc<tokio::sync::Semaphore>,
    piece_slots: Arc<tokio::sync::Semaphore>,
    /// Parts held in memory by downloads reading ahead, node-wide.
    ahead_slots: Arc<tokio::sync::Semaphore>,
}

/// Session requests that may send parts while their body streams in, at
/// once. Each holds up to `parts_in_flight` parts in memory; other requests
/// stage their bytes, which are sent afterwards, one part at a time.
const TEE_SLOTS: usize = 2;

/// Requests whose bytes go straight to the store (sessions kept in the
/// store, a cluster's uploads) at once per node; each holds up to
/// `parts_in_flight` parts in memory. Others wait for a slot
/// (`piece_slot`).
pub const PIECE_SLOTS: usize = 8;

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

type Resp = aws_sdk_s3::config::http::HttpResponse;

/// Map an SDK error: unreachable or failing store → 503 StorageIsDown.
fn sdk_err<E>(e: SdkError<E, Resp>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            if status >= 500 {
                StoreError::Unavailable(Box::new(e))
            } else {
                StoreError::internal(format!(
                    "s3: {} {}",
                    se.err().code().unwrap_or("error"),
                    se.err().message().unwrap_or("")
                ))
            }
        }
        _ => StoreError::internal(e),
    }
}

/// Map an error of a multipart call: the server no longer knowing the
/// upload (`NoSuchUpload`) is `SessionLost`, the rest as `sdk_err`.
fn multipart_err<E>(e: SdkError<E, Resp>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) if se.err().code() == Some("NoSuchUpload") => {
            StoreError::SessionLost
        }
        _ => sdk_err(e),
    }
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, Resp>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            se.raw().status().as_u16() == 404
                || matches!(se.err().code(), Some("NoSuchKey" | "NotFound"))
        }
        _ => false,
    }
}

/// The SDK configuration of `cfg`'s store: endpoint, region, credentials
/// (the secret read from its file if need be), path style.
fn client_config(cfg: &S3Config) -> Result<aws_sdk_s3::config::Builder> {
    let secret = match (&cfg.secret_access_key, &cfg.secret_access_key_file) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => std::fs::read_to_string(p)?.trim().to_string(),
        (None, None) => return Err(StoreError::internal("no S3 secret access key configured")),
    };
    let creds = Credentials::new(
        cfg.access_key_id.clone(),
        secret,
        None,
        None,
        "imgapi-config",
    );
    Ok(aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(cfg.endpoint.clone())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(creds)
        .force_path_style(cfg.force_path_style))
}

/// What [`check_bucket`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketCheck {
    /// The bucket answered a HEAD with the credentials.
    Reachable,
    /// The store answered, and has no such bucket (the server creates it
    /// at start-up).
    Missing,
}

/// One HEAD of `cfg`'s bucket with its credentials, without retries, that
/// gives up after `within` (`imgapi config check`). Creates nothing. The
/// error says what failed: the secret key file, the connection, or the
/// store's answer.
pub async fn check_bucket(
    cfg: &S3Config,
    within: Duration,
) -> std::result::Result<BucketCheck, String> {
    let conf = client_config(cfg)
        .map_err(|e| match &cfg.secret_access_key_file {
            Some(p) if cfg.secret_access_key.is_none() => {
                format!("cannot read secret_access_key_file {}: {e}", p.display())
            }
            _ => e.to_string(),
        })?
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(within.min(Duration::from_secs(cfg.connect_timeout_secs.max(1))))
                .operation_timeout(within)
                .build(),
        )
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let client = Client::from_conf(conf);
    match client.head_bucket().bucket(&cfg.bucket).send().await {
        Ok(_) => Ok(BucketCheck::Reachable),
        Err(SdkError::ServiceError(se)) => match se.raw().status().as_u16() {
            404 => Ok(BucketCheck::Missing),
            403 => Err(format!(
                "{} refused access to bucket {} (403): check access_key_id and the secret key",
                cfg.endpoint, cfg.bucket
            )),
            st => Err(format!(
                "{} answered {st} to a HEAD of bucket {}",
                cfg.endpoint, cfg.bucket
            )),
        },
        Err(SdkError::TimeoutError(_)) => Err(format!(
            "{} did not answer within {} s",
            cfg.endpoint,
            within.as_secs_f32()
        )),
        Err(e) => {
            // The innermost cause says it ("Connection refused", a DNS
            // failure); the layers above it name SDK internals.
            let mut cause: &dyn std::error::Error = &e;
            while let Some(s) = cause.source() {
                cause = s;
            }
            Err(format!("cannot reach {}: {cause}", cfg.endpoint))
        }
    }
}

impl S3Store {
    /// Connect; creates the bucket if it does not exist.
    pub async fn new(cfg: &S3Config) -> Result<S3Store> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)))
            .operation_attempt_timeout(Duration::from_secs(cfg.request_timeout_secs.max(1)))
            .build();
        let conf = client_config(cfg)?.timeout_config(timeouts).build();
        let store = S3Store {
            client: Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            part_size: (cfg.part_size_mib.max(5) << 20) as usize,
            parts_in_flight: cfg.parts_in_flight.max(1),
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            tee_slots: Arc::new(tokio::sync::Semaphore::new(TEE_SLOTS)),
            piece_slots: Arc::new(tokio::sync::Semaphore::new(PIECE_SLOTS)),
            ahead_slots: Arc::new(tokio::sync::Semaphore::new(get_ahead::NODE_PARTS)),
        };
        match store
            .client
            .head_bucket()
            .bucket(&store.bucket)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(&e, SdkError::ServiceError(se) if se.raw().status().as_u16() == 404) =>
            {
                store
                    .client
                    .create_bucket()
                    .bucket(&store.bucket)
                    .send()
                    .await
                    .map_err(sdk_err)?;
            }
            // Down at start-up: serve anyway; requests get 503 until it is back.
            Err(e) => match sdk_err(e) {
                StoreError::Unavailable(cause) => {
                    tracing::warn!(error = %cause, "the S3 store is unreachable; starting anyway");
                }
                other => return Err(other),
            },
        }
        Ok(store)
    }

    /// The timeouts of a long request (see [`LONG_REQUEST_TIMEOUT`]).
    fn long_request(&self) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::default().timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(self.connect_timeout)
                .operation_attempt_timeout(LONG_REQUEST_TIMEOUT)
                .build(),
        )
    }

    /// The object key of a store key.
    fn k(&self, key: &str) -> Result<String> {
        if !valid_key(key) {
            return Err(StoreError::internal(format!("invalid store key {key:?}")));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let r = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .send()
            .await;
        match r {
            Ok(o) => {
                let modified = o
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                    .unwrap_or(std::time::UNIX_EPOCH);
                let mtime = chrono::DateTime::<chrono::Utc>::from(modified);
                let etag = o.e_tag().unwrap_or("").to_string();
                Ok(Some(ObjectMeta {
                    size: o.content_length().unwrap_or(0).max(0) as u64,
                    mtime: mtime.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    // The ETag changes whenever the object is rewritten.
                    mtime_ns: modified
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                    etag: Some(etag),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// Stream the object (or `range` of it). A range of more than two
    /// parts is read in parts, up to `parts_in_flight - 1` of them fetched
    /// ahead of the one being sent (`get_ahead`).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some(r) = &range
            && self.parts_in_flight > 1
            && r.end.saturating_sub(r.start) > 2 * self.part_size as u64
        {
            return get_ahead::stream(self, key, r.clone()).await;
        }
        let o = self.get_object(key, range.clone(), None).await?;
        match o {
            Some(body) => Ok(body),
            None => Ok(Box::pin(futures_util::stream::empty())),
        }
    }

    /// One GET of the object or of `range` (None for an empty range),
    /// with `If-Match: etag` if given; the body as its own chunks, as the
    /// connection received them (no copy).
    async fn get_object(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        etag: Option<&str>,
    ) -> Result<Option<ByteStream>> {
        Ok(self
            .get_object_etag(key, range, etag)
            .await?
            .map(|(body, _)| body))
    }

    /// As `get_object`, with the object's ETag.
    async fn get_object_etag(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        etag: Option<&str>,
    ) -> Result<Option<(ByteStream, Option<String>)>> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.k(key)?);
        if let Some(r) = range {
            if r.start >= r.end {
                return Ok(None);
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        if let Some(e) = etag {
            req = req.if_match(e);
        }
        let o = match req.send().await {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => {
                return Err(StoreError::not_found(key));
            }
            Err(e) => return Err(sdk_err(e)),
        };
        // (a store that ignores If-Match still answers the ETag it has)
        if let (Some(want), Some(got)) = (etag, o.e_tag.as_deref())
            && want != got
        {
            return Err(StoreError::internal(format!(
                "the object {key:?} changed while it was read"
            )));
        }
        let etag = o.e_tag;
        let body = futures_util::stream::unfold(o.body, |mut body| async move {
            let chunk = body.next().await?;
            Some((chunk.map_err(std::io::Error::other), body))
        });
        Ok(Some((Box::pin(body), etag)))
    }

    /// A presigned GET URL of the object, valid for `ttl` (at most 7
    /// days, S3's limit); anyone holding it may read the object until
    /// then. Computed locally: no request is sent. `content_type`, if set,
    /// is the `Content-Type` S3 answers the URL with.
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: Option<&str>,
    ) -> Result<String> {
        let cfg = PresigningConfig::expires_in(ttl).map_err(StoreError::internal)?;
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.k(key)?);
        if let Some(ct) = content_type {
            req = req.response_content_type(ct);
        }
        let signed = req.presigned(cfg).await.map_err(sdk_err)?;
        Ok(signed.uri().to_string())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    /// Every object whose key starts with `prefix` (ListObjectsV2, page by
    /// page), keys without the store's own prefix, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for o in r.contents() {
                let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let modified = o
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                    .unwrap_or(std::time::UNIX_EPOCH);
                let mtime = chrono::DateTime::<chrono::Utc>::from(modified);
                out.push((
                    key.to_string(),
                    ObjectMeta {
                        size: o.size().unwrap_or(0).max(0) as u64,
                        mtime: mtime.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                        mtime_ns: modified
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or(0),
                        etag: o.e_tag().map(str::to_string),
                    },
                ));
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// True if `other` is the same bucket and prefix.
    pub fn same_place(&self, other: &S3Store) -> bool {
        self.bucket == other.bucket && self.prefix == other.prefix
    }

    /// A slot to send parts while a request streams in, if one is free.
    pub fn tee_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.tee_slots.clone().try_acquire_owned().ok()
    }

    /// The configured part size, in bytes.
    pub fn part_size(&self) -> u64 {
        self.part_size as u64
    }

    /// Start a multipart upload of `key` (a tus upload's object); its id.
    pub async fn create_multipart(&self, key: &str) -> Result<String> {
        let up = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(up.upload_id().unwrap_or_default().to_string())
    }

    /// Send part `n`; returns its ETag. Part and object bodies are not
    /// SHA-256-signed (UNSIGNED-PAYLOAD): the SDK's CRC32 checksum, which
    /// the server verifies, still covers every byte, and signing would hash
    /// every byte once more on both ends of the connection.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: i32,
        body: Bytes,
    ) -> Result<String> {
        let r = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .upload_id(upload_id)
            .part_number(n)
            .body(S3Body::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(multipart_err)?;
        Ok(r.e_tag().unwrap_or_default().to_string())
    }

    /// Complete a multipart upload from its (number, etag) parts.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<()> {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
            .collect();
        self.send_complete(&self.k(key)?, upload_id, parts)
            .await
            .map_err(multipart_err)
    }

    /// CompleteMultipartUpload of the prefixed key `key` from `parts`, the
    /// SDK's error left to the caller to map.
    async fn send_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> std::result::Result<(), SdkError<CompleteMultipartUploadError, Resp>> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .customize()
            .config_override(self.long_request())
            .send()
            .await?;
        Ok(())
    }

    /// Put `body` as the object `key` in one request; returns its ETag.
    /// (Unsigned payload, as `upload_part`.)
    pub async fn put(&self, key: &str, body: Bytes) -> Result<String> {
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .body(S3Body::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(r.e_tag().unwrap_or_default().to_string())
    }

    /// Part `n` of a multipart upload of `key` is the whole object `from`
    /// (UploadPartCopy: the bytes never leave the store); returns the
    /// part's ETag. A missing `from` is `CopySourceNotFound`.
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        n: i32,
        from: &str,
    ) -> Result<String> {
        let r = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .upload_id(upload_id)
            .part_number(n)
            .copy_source(format!("{}/{}", self.bucket, self.k(from)?))
            .customize()
            .config_override(self.long_request())
            .send()
            .await;
        match r {
            Ok(r) => Ok(r
                .copy_part_result()
                .and_then(|c| c.e_tag())
                .unwrap_or("")
                .to_string()),
            Err(e) if is_not_found(&e) => Err(StoreError::CopySourceNotFound {
                key: from.to_string(),
            }),
            Err(e) => Err(multipart_err(e)),
        }
    }

    /// A slot to hold the parts of a request whose bytes go to the store
    /// with nothing staged (sessions kept in the store): waits up to
    /// `wait` for one, then `Busy`.
    pub async fn piece_slot(&self, wait: Duration) -> Result<tokio::sync::OwnedSemaphorePermit> {
        match tokio::time::timeout(wait, self.piece_slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(StoreError::Busy),
        }
    }

    /// Parts of one write in memory at once (the one being filled included).
    pub fn parts_in_flight(&self) -> usize {
        self.parts_in_flight.max(2)
    }

    /// Abort a multipart upload (its parts are freed).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.k(key)?)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    /// Start a write of `key`; nothing is visible until commit. Objects
    /// smaller than a part are one PutObject; larger ones a multipart upload,
    /// started when the first part is full.
    pub async fn begin_write(&self, key: &str) -> Result<PendingS3Write> {
        self.k(key)?; // refuse bad keys now, not at the first part
        Ok(PendingS3Write {
            parts: PartSender::new(Arc::new(self.clone()), key, "", 1, BytesMut::new()),
            done: false,
        })
    }
}
