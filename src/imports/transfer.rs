//! A file's transfer from a source IMGAPI: staged in a store session
//! while it is hashed, checkpointed, resumed with `Range` after a cut,
//! verified against the source's MD5, then handed to the images service.

use super::*;

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

    pub(super) async fn download_inner(
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

/// Hash and stage the gathered bytes.
pub(super) async fn put(
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
