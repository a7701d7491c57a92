//! Imports from another IMGAPI (ours or Triton's, over the wire API):
//! AdminImportImageFromSource, AddImageFileFromSource and the durable
//! AdminImportRemoteImage jobs (origins first; the file streamed once into
//! a store session in the image's store while it is hashed, resumed with
//! `Range` after a cut, verified, then completed in place by the images
//! service). Owns the source allow-list, the remote client and the jobs'
//! worker.

mod remote;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::ImportsConfig;
use crate::db::Db;
use crate::db::imports::{Execution, ImportJob};
use crate::digest::{Digests, StreamHasher};
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::images::{AddFileParams, Images};
use crate::manifest::{Image, now_iso};
use crate::store::{SessionState, SessionWriter, StoreName};

pub use remote::Source;
use remote::{Fail, RemoteFile};

/// The task name of import jobs (GetImageJobs `?task=`).
pub const TASK: &str = "import-remote-image";

/// Origins followed at most when planning an import (IMGAPI: 100).
const MAX_ORIGIN_DEPTH: usize = 100;

/// Staged bytes between two saved offsets.
const CHECKPOINT_BYTES: u64 = 8 << 20;

/// The fencing token an import's session writers pass: its bytes are
/// staged on the node running the job (`Stores::staging_for`), never kept
/// as pieces that a fence names.
const STAGED: i64 = 0;

/// Where transfers stage their bytes in a directory store (the image's own
/// store when it is one, else the staging store): no image key and no
/// upload area, so `gc` and `check-files` leave it alone.
const STAGE_AREA: &str = "imgapi/imports/";

/// Received bytes gathered before they go to the hashing threads and the
/// writer (one hand-off per MiB, not one per network read).
const GATHER: usize = 1 << 20;

/// The import service.
#[derive(Clone)]
pub struct Imports {
    db: Db,
    images: Images,
    remote: remote::Client,
    cfg: Arc<ImportsConfig>,
    max_file_size: u64,
    /// The staging directory of earlier versions (swept at start-up).
    staging: PathBuf,
    running: Arc<Mutex<HashSet<Uuid>>>,
    wake: Arc<tokio::sync::Notify>,
    /// AddImageFileFromSource transfers in progress.
    transfers: Arc<tokio::sync::Semaphore>,
}

/// What an import needs of a source's file: from `files[0]` of its manifest.
#[derive(Debug, Clone)]
struct FileSpec {
    sha1: String,
    size: u64,
    compression: String,
    dataset_guid: Option<String>,
}

impl Imports {
    /// `staging` is a directory of this service's own (staged downloads).
    pub fn new(
        db: Db,
        images: Images,
        cfg: ImportsConfig,
        max_file_size: u64,
        staging: PathBuf,
    ) -> Result<Imports> {
        std::fs::create_dir_all(&staging).map_err(Error::internal)?;
        Ok(Imports {
            db,
            images,
            remote: remote::Client::new(&cfg)?,
            transfers: Arc::new(tokio::sync::Semaphore::new(cfg.max_file_transfers)),
            cfg: Arc::new(cfg),
            max_file_size,
            staging,
            running: Arc::new(Mutex::new(HashSet::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The `workflow-api` base URL configured, if any.
    pub fn workflow_api_url(&self) -> Option<&str> {
        self.cfg.workflow_api_url.as_deref()
    }

    /// Check `?source=` against the allow-list; no connection is made.
    pub fn source(&self, raw: Option<&str>) -> Result<Source> {
        Source::check(raw, &self.cfg.allowed_sources)
    }

    /// AdminImportImageFromSource: `POST /images/{uuid}?action=import&source=`.
    pub async fn import_from_source(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: &Source,
        channels: Vec<String>,
    ) -> Result<Image> {
        caller.require_operator()?;
        let m = self.remote.manifest(src, uuid).await?;
        self.images
            .import(caller, uuid, importable(m), channels)
            .await
    }

    /// AddImageFileFromSource: `PUT /images/{uuid}/file?source=`: the file
    /// of the same image at the source, verified, into this image.
    pub async fn add_file_from_source(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: &Source,
        storage: Option<String>,
    ) -> Result<Image> {
        caller.require_auth()?;
        let img = self.images.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        if img.activated {
            return Err(Error::ImageFilesImmutable(uuid));
        }
        let _slot = self.transfers.try_acquire().map_err(|_| {
            Error::TooManyRequests(
                "too many file transfers from sources in progress; retry later".into(),
            )
        })?;
        let m = self.remote.manifest(src, uuid).await?;
        let spec = self.file_spec(uuid, &m)?;
        self.images.admit_file(caller, uuid, spec.size).await?;
        let stage = self.stage(
            caller,
            storage.as_deref(),
            format!("file-{uuid}-{}.part", Uuid::new_v4()),
        )?;
        let res = async {
            let mut d = Download::new(stage.clone(), 0, None, 0);
            let (digests, session) = self.download(src, uuid, &spec, &mut d, None).await?;
            self.hand_over(caller, uuid, &spec, &stage, &session, &digests, storage)
                .await
        }
        .await;
        self.unstage(&stage).await;
        res
    }

    /// AdminImportRemoteImage: plan (origins missing here, each active at
    /// the source) and queue a job. A job already queued or running for
    /// the image is returned instead of a second one.
    pub async fn import_remote(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: Source,
        channels: Vec<String>,
        skip_owner_check: bool,
    ) -> Result<ImportJob> {
        caller.require_operator()?;
        if let Some(j) = self
            .db
            .read(move |c| c.import_active_for_image(uuid))
            .await?
        {
            return Ok(j);
        }
        if self.local(uuid).await?.is_some() {
            return Err(Error::ImageUuidAlreadyExists(uuid));
        }
        let m = self.remote.manifest(&src, uuid).await?;
        let mut plan = vec![uuid];
        let mut total = self.file_spec(uuid, &m).map(|s| s.size).ok();
        let mut next = origin_of(&m);
        while let Some(o) = next {
            if plan.len() > MAX_ORIGIN_DEPTH {
                return Err(Error::RemoteSourceError(format!(
                    "image {uuid} has more than {MAX_ORIGIN_DEPTH} origins at the source"
                )));
            }
            if plan.contains(&o) {
                return Err(Error::RemoteSourceError(format!(
                    "the origins of image {uuid} at the source form a cycle"
                )));
            }
            if let Some(local) = self.local(o).await? {
                if !local.activated {
                    return Err(Error::OriginIsNotActive(o));
                }
                break;
            }
            let om = self.remote.manifest(&src, o).await.map_err(|e| match e {
                Error::RemoteSourceError(m) => Error::RemoteSourceError(format!(
                    "Unable to get manifest for origin image {o}. {m}"
                )),
                e => e,
            })?;
            if om.get("state").and_then(Value::as_str) != Some("active") {
                return Err(Error::OriginIsNotActive(o));
            }
            total = match (total, self.file_spec(o, &om)) {
                (Some(t), Ok(s)) => Some(t + s.size),
                _ => None,
            };
            plan.insert(0, o);
            next = origin_of(&om);
        }
        let job = ImportJob {
            job_uuid: Uuid::new_v4(),
            image_uuid: uuid,
            task: TASK.into(),
            source: src.as_str().to_string(),
            skip_owner_check,
            channels,
            plan,
            created: vec![],
            execution: Execution::Queued,
            current_image: None,
            file_offset: 0,
            content_md5: None,
            bytes_received: 0,
            bytes_total: total,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: now_iso(),
            started_at: None,
            finished_at: None,
        };
        let j = job.clone();
        let existing = self
            .db
            .write(move |c| {
                if let Some(j) = c.import_active_for_image(uuid)? {
                    return Ok(Some(j));
                }
                c.import_insert(&j)?;
                Ok::<_, crate::db::DbError>(None)
            })
            .await?;
        if let Some(j) = existing {
            return Ok(j);
        }
        self.wake.notify_one();
        Ok(job)
    }

    /// GET /jobs/{uuid}.
    pub async fn job(&self, job: Uuid) -> Result<ImportJob> {
        self.db
            .read(move |c| c.import_get(job))
            .await?
            .ok_or_else(|| Error::not_found(format!("job \"{job}\" does not exist")))
    }

    /// GetImageJobs: the image's jobs, newest first.
    pub async fn image_jobs(
        &self,
        image: Uuid,
        execution: Option<Execution>,
    ) -> Result<Vec<ImportJob>> {
        Ok(self
            .db
            .read(move |c| c.import_list_for_image(image, execution))
            .await?)
    }

    async fn local(&self, uuid: Uuid) -> Result<Option<Image>> {
        Ok(self.db.read(move |c| c.image_get(uuid)).await?)
    }

    fn file_spec(&self, uuid: Uuid, m: &Map<String, Value>) -> Result<FileSpec> {
        let f = m
            .get("files")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Error::RemoteSourceError(format!("image {uuid} has no file at the source"))
            })?;
        let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
        let bad = |what: &str| {
            Error::RemoteSourceError(format!(
                "the source's manifest of image {uuid} has no valid files[0].{what}"
            ))
        };
        let sha1 = s("sha1")
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("sha1"))?
            .to_ascii_lowercase();
        let size = f
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("size"))?;
        if size > self.max_file_size {
            return Err(Error::Upload(format!(
                "image file size, {size} (at the source) exceeds the maximum allowed size, {}",
                self.max_file_size
            )));
        }
        let compression = s("compression").ok_or_else(|| bad("compression"))?;
        Ok(FileSpec {
            sha1,
            size,
            compression,
            dataset_guid: s("dataset_guid"),
        })
    }

    /// Where a transfer named `name` stages its bytes for an image file
    /// stored as AddImageFile with `?storage=` would store it.
    fn stage(&self, caller: &Caller, storage: Option<&str>, name: String) -> Result<Stage> {
        let target = self.images.file_target(caller, storage)?;
        let staged = if self.images.stores.get(target).is_local() {
            target
        } else {
            StoreName::Staging
        };
        Ok(Stage {
            target,
            staged,
            key: format!("{STAGE_AREA}{name}"),
        })
    }

    /// The stage of a job's file of `image`.
    fn job_stage(&self, job: Uuid, image: Uuid) -> Result<Stage> {
        self.stage(&Caller::operator(), None, format!("job-{job}-{image}.part"))
    }

    /// Remove a stage's bytes (absent is fine; errors only logged).
    async fn unstage(&self, stage: &Stage) {
        let store = self.images.stores.get(stage.staged);
        match store.head(&stage.key).await {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => {
                if let Err(e) = store.delete(&stage.key).await {
                    tracing::warn!(key = %stage.key, error = %e, "could not remove staged import bytes");
                }
            }
        }
    }

    /// Fetch the file into the stage's session from `d.offset` on, resuming
    /// with `Range` after a dropped or stalled connection, hashing as it
    /// goes (one pass: the bytes are written once, where the image file
    /// ends up); then check size, sha1 and the source's Content-MD5. A
    /// mismatch deletes the staged bytes. `job` saves progress on the
    /// job's row. Returns the verified digests and the session, all in.
    async fn download(
        &self,
        src: &Source,
        uuid: Uuid,
        spec: &FileSpec,
        d: &mut Download,
        job: Option<Uuid>,
    ) -> Result<(Digests, SessionState)> {
        let res = self.download_inner(src, uuid, spec, d, job).await;
        if let Err(Error::RemoteSourceError(_)) = &res
            && d.corrupt
        {
            self.unstage(&d.stage).await;
        }
        res
    }

    async fn download_inner(
        &self,
        src: &Source,
        uuid: Uuid,
        spec: &FileSpec,
        d: &mut Download,
        job: Option<Uuid>,
    ) -> Result<(Digests, SessionState)> {
        let stores = &self.images.stores;
        let stage = d.stage.clone();
        let on_disk = stores
            .get(stage.staged)
            .head(&stage.key)
            .await?
            .map(|m| m.size)
            .unwrap_or(0);
        if on_disk < d.offset || d.offset > spec.size {
            d.offset = 0;
            d.md5 = None;
        }
        let mut st = SessionState {
            staged: stage.staged,
            staged_key: stage.key.clone(),
            offset: d.offset,
            multipart: None,
            window: None,
            pieces: None,
        };
        let mut hasher = self.rehash(&st).await?;
        // Opening cuts anything staged past the saved offset.
        let mut w = Some(stores.append(&st, stage.target, None, STAGED).await?);
        let mut idle_rounds = 0u32;
        // Received bytes not yet hashed and written (at most GATHER).
        let mut gathered = bytes::BytesMut::with_capacity(GATHER);
        while d.offset < spec.size {
            let before = d.offset;
            let got = self.remote.file(src, uuid, d.offset, spec.size).await;
            let resp = match got {
                Ok(r) => r,
                Err(Fail::Permanent(e)) => return Err(e),
                Err(Fail::Transient(e)) => {
                    idle_rounds += 1;
                    if idle_rounds > self.cfg.max_resumes {
                        return Err(e);
                    }
                    backoff(idle_rounds).await;
                    continue;
                }
            };
            let RemoteFile {
                mut resp,
                restart,
                content_md5,
            } = resp;
            if restart {
                // The source ignored the Range: start over.
                if let Some(old) = w.take() {
                    let _ = old.abort().await;
                }
                st.offset = 0;
                w = Some(stores.append(&st, stage.target, None, STAGED).await?);
                hasher = StreamHasher::new()?;
                d.offset = 0;
            }
            if content_md5.is_some() {
                d.md5 = content_md5;
            }
            let stall = Duration::from_secs(self.cfg.stall_timeout_secs);
            loop {
                let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
                    Ok(Ok(Some(c))) => c,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        tracing::info!(image.uuid = %uuid, offset = d.offset, error = %e, "source dropped the file transfer; resuming");
                        break;
                    }
                    Err(_) => {
                        tracing::info!(image.uuid = %uuid, offset = d.offset, "source stalled; resuming");
                        break;
                    }
                };
                if d.offset + chunk.len() as u64 > spec.size {
                    d.corrupt = true;
                    return Err(Error::RemoteSourceError(format!(
                        "the source sent more than the {} bytes its manifest gives for image {uuid}",
                        spec.size
                    )));
                }
                d.offset += chunk.len() as u64;
                d.received += chunk.len() as u64;
                gathered.extend_from_slice(&chunk);
                if gathered.len() >= GATHER {
                    put(&mut hasher, &mut w, &mut gathered).await?;
                }
                if job.is_some() && d.offset - st.offset >= CHECKPOINT_BYTES {
                    put(&mut hasher, &mut w, &mut gathered).await?;
                    let writer = w
                        .take()
                        .ok_or_else(|| Error::internal("no session writer"))?;
                    self.checkpoint(writer, &mut st, job, uuid, d).await?;
                    w = Some(stores.append(&st, stage.target, None, STAGED).await?);
                }
            }
            put(&mut hasher, &mut w, &mut gathered).await?;
            if d.offset > before {
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds > self.cfg.max_resumes {
                    return Err(Error::RemoteSourceError(format!(
                        "the source stopped sending the file of image {uuid} at byte {}",
                        d.offset
                    )));
                }
                backoff(idle_rounds).await;
            }
        }
        let writer = w
            .take()
            .ok_or_else(|| Error::internal("no session writer"))?;
        self.checkpoint(writer, &mut st, job, uuid, d).await?;
        let got = hasher.finish().await?;
        let mut errors = Vec::new();
        if got.size != spec.size {
            errors.push(format!("size {} (manifest: {})", got.size, spec.size));
        }
        if got.sha1_hex() != spec.sha1 {
            errors.push(format!("sha1 {} (manifest: {})", got.sha1_hex(), spec.sha1));
        }
        if let Some(m) = &d.md5
            && *m != got.md5_base64()
        {
            errors.push(format!("md5 {} (Content-MD5: {m})", got.md5_base64()));
        }
        if !errors.is_empty() {
            d.corrupt = true;
            return Err(Error::RemoteSourceError(format!(
                "the file of image {uuid} from the source does not verify: {}",
                errors.join(", ")
            )));
        }
        Ok((got, st))
    }

    /// Make the staged bytes durable (the writer's end), then save the
    /// offset on the job's row.
    async fn checkpoint(
        &self,
        w: SessionWriter,
        st: &mut SessionState,
        job: Option<Uuid>,
        image: Uuid,
        d: &Download,
    ) -> Result<()> {
        w.finish().await?;
        st.offset = d.offset;
        let Some(job) = job else { return Ok(()) };
        let (off, md5, recv) = (d.offset, d.md5.clone(), d.received);
        self.db
            .write(move |c| c.import_checkpoint(job, Some(image), off, md5.as_deref(), recv))
            .await?;
        Ok(())
    }

    /// The hasher state after the session's bytes (a resume after a
    /// restart re-reads local bytes, never the source's).
    async fn rehash(&self, st: &SessionState) -> Result<StreamHasher> {
        let mut h = StreamHasher::new()?;
        if st.offset == 0 {
            return Ok(h);
        }
        let body = self.images.stores.read_session(st, None).await?;
        h.update_to(body, st.offset, Error::internal).await?;
        Ok(h)
    }

    /// Hand the verified session to AddImageFile (completed in place, not
    /// read again).
    #[allow(clippy::too_many_arguments)]
    async fn hand_over(
        &self,
        caller: &Caller,
        uuid: Uuid,
        spec: &FileSpec,
        stage: &Stage,
        session: &SessionState,
        digests: &Digests,
        storage: Option<String>,
    ) -> Result<Image> {
        let p = AddFileParams {
            compression: Some(spec.compression.clone()),
            sha1: Some(spec.sha1.clone()),
            dataset_guid: spec.dataset_guid.clone(),
            storage,
            content_length: Some(spec.size),
        };
        self.images
            .add_file_from_session(caller, uuid, p, stage.target, session, digests)
            .await
    }

    /// Run one job (unless it already runs here) and record its outcome.
    async fn run(&self, job: ImportJob) {
        let id = job.job_uuid;
        {
            let Ok(mut r) = self.running.lock() else {
                return;
            };
            if !r.insert(id) {
                return;
            }
        }
        // One node runs a job at a time; a node that dies or freezes loses
        // the job's lease and another node resumes the job.
        match crate::lease::Lease::claim(&self.db, format!("import:{id}")).await {
            Ok(Some(_lease)) => {
                let outcome = self.execute(id).await;
                if let Err(e) = self.settle(id, outcome).await {
                    tracing::error!(job.uuid = %id, error = %e, "could not record an import job's outcome");
                }
            }
            Ok(None) => tracing::debug!(job.uuid = %id, "the import runs on another node"),
            Err(e) => tracing::warn!(job.uuid = %id, error = %e, "could not claim an import job"),
        }
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
    }

    async fn execute(&self, id: Uuid) -> Result<()> {
        let now = now_iso();
        self.db.write(move |c| c.import_start(id, &now)).await?;
        let job = self.job(id).await?;
        let src = Source::check(Some(&job.source), &self.cfg.allowed_sources)?;
        let op = Caller::operator();
        for &uuid in &job.plan {
            let job = self.job(id).await?;
            let img = match self.local(uuid).await? {
                Some(img) if img.activated => continue,
                Some(img) if job.created.contains(&uuid) => img,
                Some(_) if uuid == job.image_uuid => {
                    return Err(Error::ImageUuidAlreadyExists(uuid));
                }
                Some(_) => return Err(Error::OriginIsNotActive(uuid)),
                None => {
                    let m = self.remote.manifest(&src, uuid).await?;
                    if uuid != job.image_uuid
                        && m.get("state").and_then(Value::as_str) != Some("active")
                    {
                        return Err(Error::OriginIsNotActive(uuid));
                    }
                    self.db
                        .write(move |c| c.import_add_created(id, uuid))
                        .await?;
                    self.images
                        .import(&op, uuid, importable(m), job.channels.clone())
                        .await?
                }
            };
            if img.files.is_empty() {
                let m = self.remote.manifest(&src, uuid).await?;
                let spec = self.file_spec(uuid, &m)?;
                self.images.admit_file(&op, uuid, spec.size).await?;
                let stage = self.job_stage(id, uuid)?;
                let (offset, md5) = match job.current_image {
                    Some(c) if c == uuid => (job.file_offset, job.content_md5.clone()),
                    _ => (0, None),
                };
                let mut d = Download::new(stage.clone(), offset, md5, job.bytes_received);
                let (digests, session) = self.download(&src, uuid, &spec, &mut d, Some(id)).await?;
                self.hand_over(&op, uuid, &spec, &stage, &session, &digests, None)
                    .await?;
                self.unstage(&stage).await;
                let recv = d.received;
                self.db
                    .write(move |c| c.import_checkpoint(id, None, 0, None, recv))
                    .await?;
            }
            self.images.activate(&op, uuid).await?;
        }
        Ok(())
    }

    /// Record a job's end. A failed job removes what it created (newest
    /// first) and its staged bytes, so nothing half-imported stays.
    async fn settle(&self, id: Uuid, outcome: Result<()>) -> Result<()> {
        let job = self.job(id).await?;
        for image in &job.plan {
            if let Ok(stage) = self.job_stage(id, *image) {
                self.unstage(&stage).await;
            }
        }
        let now = now_iso();
        match outcome {
            Ok(()) => {
                self.db
                    .write(move |c| c.import_finish(id, Execution::Succeeded, None, &now))
                    .await?;
                tracing::info!(job.uuid = %id, image.uuid = %job.image_uuid, "import job succeeded");
            }
            Err(e) => {
                tracing::warn!(job.uuid = %id, image.uuid = %job.image_uuid, error = %e, "import job failed");
                for image in job.created.iter().rev() {
                    match self.images.delete(&Caller::operator(), *image).await {
                        Ok(()) | Err(Error::ResourceNotFound(_)) => {}
                        Err(e) => {
                            tracing::warn!(image.uuid = %image, error = %e, "could not remove an image of a failed import")
                        }
                    }
                }
                let code = e.code().to_string();
                let message = if e.status() >= 500 && !matches!(e, Error::RemoteSourceError(_)) {
                    "internal error".to_string()
                } else {
                    e.to_string()
                };
                self.db
                    .write(move |c| {
                        c.import_finish(id, Execution::Failed, Some((&code, &message)), &now)
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Run every unfinished job once.
    pub async fn run_pending(&self) -> Result<usize> {
        let jobs = self.db.read(|c| c.import_unfinished()).await?;
        let n = jobs.len();
        for j in jobs {
            self.run(j).await;
        }
        Ok(n)
    }

    /// Remove staged files no transfer owns any more: those of
    /// AddImageFileFromSource requests a crash cut short, and those of
    /// jobs that are over (in the stage areas of the directory stores, and
    /// in the staging directory earlier versions used). Run at start-up,
    /// before the worker resumes jobs.
    pub async fn sweep_staging(&self) -> Result<usize> {
        let live: HashSet<String> = self
            .db
            .read(|c| c.import_unfinished())
            .await?
            .iter()
            .map(|j| format!("job-{}-", j.job_uuid))
            .collect();
        let owned =
            |name: &str| name.starts_with("job-") && live.iter().any(|p| name.starts_with(p));
        let mut n = 0;
        let mut rd = tokio::fs::read_dir(&self.staging)
            .await
            .map_err(Error::internal)?;
        while let Some(e) = rd.next_entry().await.map_err(Error::internal)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".part") && !owned(&name) {
                remove_file(&e.path()).await;
                n += 1;
            }
        }
        let stores = &self.images.stores;
        let mut seen: Vec<&crate::store::Store> = Vec::new();
        for name in [StoreName::Local, StoreName::Manta, StoreName::Staging] {
            let store = stores.get(name);
            if !store.is_local() || seen.iter().any(|s| s.same_place(store)) {
                continue;
            }
            seen.push(store);
            for (key, _) in store.list(STAGE_AREA).await? {
                let file = key.rsplit('/').next().unwrap_or_default();
                if file.ends_with(".part") && !owned(file) {
                    if let Err(e) = store.delete(&key).await {
                        tracing::warn!(key = %key, error = %e, "could not remove staged import bytes");
                    }
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// The worker: resumes jobs after a restart and runs new ones, one at
    /// a time.
    pub async fn work_forever(self) {
        match self.sweep_staging().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed staged import files nothing owns"),
            Err(e) => tracing::warn!(error = %e, "could not sweep the import staging area"),
        }
        loop {
            match self.run_pending().await {
                Ok(n) if n > 0 => {
                    // New jobs may have come in meanwhile; a job whose
                    // outcome could not be recorded is not retried hot.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "import worker failed"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), self.wake.notified()).await;
        }
    }
}

/// Where a transfer stages its bytes: a session in the directory store
/// `staged` at `key`, completed into the image's store `target`.
#[derive(Debug, Clone)]
struct Stage {
    target: StoreName,
    staged: StoreName,
    key: String,
}

/// A download in progress: where, how far, what the source said the MD5 is,
/// and the job's bytes counter.
struct Download {
    stage: Stage,
    offset: u64,
    md5: Option<String>,
    received: u64,
    /// The staged bytes are wrong (not merely incomplete).
    corrupt: bool,
}

impl Download {
    fn new(stage: Stage, offset: u64, md5: Option<String>, received: u64) -> Download {
        Download {
            stage,
            offset,
            md5,
            received,
            corrupt: false,
        }
    }
}

/// Hash and stage the gathered bytes.
async fn put(
    hasher: &mut StreamHasher,
    w: &mut Option<SessionWriter>,
    gathered: &mut bytes::BytesMut,
) -> Result<()> {
    if gathered.is_empty() {
        return Ok(());
    }
    let b = gathered.split().freeze();
    hasher.update(&b).await?;
    w.as_mut()
        .ok_or_else(|| Error::internal("no session writer"))?
        .write(b)
        .await?;
    Ok(())
}

async fn backoff(round: u32) {
    let ms = 100u64 << round.min(6);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn remove_file(p: &Path) {
    match tokio::fs::remove_file(p).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %p.display(), error = %e, "could not remove a staged file"),
    }
}

fn origin_of(m: &Map<String, Value>) -> Option<Uuid> {
    m.get("origin")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A source's manifest as AdminImportImage takes it: without what the
/// import sets itself or this server does not take from a source
/// (channels, the icon flag).
fn importable(mut m: Map<String, Value>) -> Map<String, Value> {
    for k in ["channels", "icon", "state", "files", "error"] {
        m.remove(k);
    }
    m
}

/// `?execution=` of GetImageJobs (IMGAPI's values; `canceled` matches
/// nothing here).
pub fn parse_execution(v: &str) -> Result<Option<Execution>> {
    match v {
        "canceled" => Ok(None),
        v => Execution::parse(v)
            .map(Some)
            .ok_or_else(|| Error::InvalidParameter {
                message: format!("invalid \"execution\": \"{v}\""),
                errors: vec![FieldError::new("execution", FieldCode::Invalid)],
            }),
    }
}
