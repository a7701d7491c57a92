//! A file's transfer from a source IMGAPI: staged in a store session
//! while it is hashed, checkpointed, resumed with `Range` after a cut,
//! verified against the source's MD5, then handed to the images service.

use super::*;
use crate::store::Stores;

impl Imports {
    /// Where a transfer named `name` stages its bytes for an image file
    /// stored as AddImageFile with `?storage=` would store it.
    pub(super) fn stage(
        &self,
        caller: &Caller,
        storage: Option<&str>,
        name: String,
    ) -> Result<Stage> {
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
    pub(super) fn job_stage(&self, job: Uuid, image: Uuid) -> Result<Stage> {
        self.stage(&Caller::operator(), None, format!("job-{job}-{image}.part"))
    }

    /// Remove a stage's bytes (absent is fine; errors only logged).
    pub(super) async fn unstage(&self, stage: &Stage) {
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
    pub(super) async fn download(
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

    /// [`Self::download`], without removing corrupt staged bytes.
    pub(super) async fn download_inner(
        &self,
        src: &Source,
        uuid: Uuid,
        spec: &FileSpec,
        d: &mut Download,
        job: Option<Uuid>,
    ) -> Result<(Digests, SessionState)> {
        let mut staging = self.open_staging(spec, d).await?;
        let mut idle_rounds = 0u32;
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
            self.receive(resp, uuid, spec, d, job, &mut staging).await?;
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
        let writer = staging.take_writer()?;
        self.checkpoint(writer, &mut staging.session, job, uuid, d)
            .await?;
        let got = staging.hasher.finish().await?;
        verify_download(&got, spec, uuid, d)?;
        Ok((got, staging.session))
    }

    /// The session of `d`'s stage, resumed at `d.offset` when the bytes
    /// staged reach it (else started over), with its hasher and an open
    /// writer (opening cuts anything staged past the saved offset).
    async fn open_staging(&self, spec: &FileSpec, d: &mut Download) -> Result<Staging> {
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
        let session = SessionState {
            staged: stage.staged,
            staged_key: stage.key.clone(),
            offset: d.offset,
            multipart: None,
            window: None,
            pieces: None,
        };
        let hasher = self.rehash(&session).await?;
        // Opening cuts anything staged past the saved offset.
        let writer = Some(stores.append(&session, stage.target, None, STAGED).await?);
        Ok(Staging {
            session,
            hasher,
            writer,
            gathered: bytes::BytesMut::with_capacity(GATHER),
            target: stage.target,
        })
    }

    /// Take in one response of the source into `staging` until it ends,
    /// drops or stalls (starting over if it ignored the `Range`), saving
    /// progress every [`CHECKPOINT_BYTES`] for a `job`; more bytes than
    /// the manifest gives mark `d` corrupt.
    async fn receive(
        &self,
        resp: RemoteFile,
        uuid: Uuid,
        spec: &FileSpec,
        d: &mut Download,
        job: Option<Uuid>,
        staging: &mut Staging,
    ) -> Result<()> {
        let stores = &self.images.stores;
        let RemoteFile {
            mut resp,
            restart,
            content_md5,
        } = resp;
        if restart {
            // The source ignored the Range: start over.
            staging.start_over(stores).await?;
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
            staging.gathered.extend_from_slice(&chunk);
            if staging.gathered.len() >= GATHER {
                staging.put().await?;
            }
            if job.is_some() && d.offset - staging.session.offset >= CHECKPOINT_BYTES {
                staging.put().await?;
                let writer = staging.take_writer()?;
                self.checkpoint(writer, &mut staging.session, job, uuid, d)
                    .await?;
                staging.reopen(stores).await?;
            }
        }
        staging.put().await
    }

    /// Make the staged bytes durable (the writer's end), then save the
    /// offset on the job's row.
    pub(super) async fn checkpoint(
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
    pub(super) async fn rehash(&self, st: &SessionState) -> Result<StreamHasher> {
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
    pub(super) async fn hand_over(
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
}

/// Where a transfer stages its bytes: a session in the directory store
/// `staged` at `key`, completed into the image's store `target`.
#[derive(Debug, Clone)]
pub(super) struct Stage {
    pub(super) target: StoreName,
    pub(super) staged: StoreName,
    pub(super) key: String,
}

/// A download in progress: where, how far, what the source said the MD5 is,
/// and the job's bytes counter.
pub(super) struct Download {
    pub(super) stage: Stage,
    pub(super) offset: u64,
    pub(super) md5: Option<String>,
    pub(super) received: u64,
    /// The staged bytes are wrong (not merely incomplete).
    pub(super) corrupt: bool,
}

impl Download {
    pub(super) fn new(stage: Stage, offset: u64, md5: Option<String>, received: u64) -> Download {
        Download {
            stage,
            offset,
            md5,
            received,
            corrupt: false,
        }
    }
}

/// The staging side of a download in progress: the session, the hasher
/// of its bytes, its open writer, and the received bytes not yet hashed
/// and written (at most [`GATHER`]).
struct Staging {
    session: SessionState,
    hasher: StreamHasher,
    writer: Option<SessionWriter>,
    gathered: bytes::BytesMut,
    /// The image's store the session is completed into.
    target: StoreName,
}

impl Staging {
    /// The session's writer, to be checkpointed (reopen it to go on).
    fn take_writer(&mut self) -> Result<SessionWriter> {
        self.writer
            .take()
            .ok_or_else(|| Error::internal("no session writer"))
    }

    /// Open a writer of the session at its offset.
    async fn reopen(&mut self, stores: &Stores) -> Result<()> {
        self.writer = Some(
            stores
                .append(&self.session, self.target, None, STAGED)
                .await?,
        );
        Ok(())
    }

    /// Abort the writer and the hash, and stage again from byte 0.
    async fn start_over(&mut self, stores: &Stores) -> Result<()> {
        if let Some(old) = self.writer.take() {
            let _ = old.abort().await;
        }
        self.session.offset = 0;
        self.reopen(stores).await?;
        self.hasher = StreamHasher::new()?;
        Ok(())
    }

    /// Hash and stage the gathered bytes.
    async fn put(&mut self) -> Result<()> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let b = self.gathered.split().freeze();
        self.hasher.update(&b).await?;
        self.writer
            .as_mut()
            .ok_or_else(|| Error::internal("no session writer"))?
            .write(b)
            .await?;
        Ok(())
    }
}

/// Check the digests of a complete download against the manifest's size
/// and sha1 and the source's Content-MD5; a mismatch marks `d` corrupt.
fn verify_download(got: &Digests, spec: &FileSpec, uuid: Uuid, d: &mut Download) -> Result<()> {
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
    Ok(())
}

pub(super) async fn backoff(round: u32) {
    let ms = 100u64 << round.min(6);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

pub(super) async fn remove_file(p: &Path) {
    match tokio::fs::remove_file(p).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %p.display(), error = %e, "could not remove a staged file"),
    }
}
