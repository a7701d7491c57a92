//! Recording a registration job's outcome: the verified file installed
//! on its image (activating a new one), a retry left for later, or the
//! job failed (a new image's placeholder then failed too).

use serde_json::json;
use uuid::Uuid;

use super::{DEST_STOR, JobError, MAX_ATTEMPTS, Registrar};
use crate::clock::Clock;
use crate::db::Meta;
use crate::db::registrations::{Job, JobKind, JobState};
use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::images::placeholder_expiry;
use crate::manifest::{ImageFile, Placeholder};
use crate::store::image_file_key;

impl Registrar {
    /// Record the outcome: activate (or just attach), retry later, or fail.
    pub(super) async fn settle(
        &self,
        job: &Job,
        outcome: std::result::Result<(Digests, bool), JobError>,
        fence: i64,
    ) -> Result<()> {
        let uuid = job.image_uuid;
        let _g = self.locks.lock(uuid).await?;
        match outcome {
            Ok((d, _moved)) => self.record_registered(job, &d, fence).await,
            Err(JobError::Retry(e)) if job.attempts + 1 < MAX_ATTEMPTS => {
                tracing::warn!(image.uuid = %uuid, error = %e, "registration will be retried");
                Ok(())
            }
            Err(JobError::Retry(e)) | Err(JobError::Permanent(e)) => {
                self.record_failed(job, e, fence).await
            }
        }
    }

    /// A job that verified its file `d`: the file installed on its image,
    /// the files it replaces (or, the image deleted meanwhile, the new
    /// bytes) removed.
    async fn record_registered(&self, job: &Job, d: &Digests, fence: i64) -> Result<()> {
        let uuid = job.image_uuid;
        let file = ImageFile {
            sha1: d.sha1_hex(),
            size: d.size,
            compression: job.compression.as_str().to_string(),
            dataset_guid: job.dataset_guid.clone(),
            stor: DEST_STOR,
            content_md5: d.md5_base64(),
            mtime: self.clock.timestamp().into(),
        };
        let job2 = job.clone();
        let clock = self.clock.clone();
        let old = self
            .db
            .write(move |c| install_file(c, &job2, file, fence, &clock))
            .await?;
        match old {
            None => {
                // The image was deleted while registering: drop the bytes.
                let _ = self
                    .stores
                    .get(DEST_STOR)
                    .delete(&image_file_key(DEST_STOR, &uuid))
                    .await;
            }
            Some(old) => {
                for f in old.iter().filter(|f| f.stor != DEST_STOR) {
                    let s = self.stores.get(f.stor);
                    let _ = s.delete(&image_file_key(f.stor, &uuid)).await;
                }
                tracing::info!(image.uuid = %uuid, size_bytes = d.size, "registered image file");
            }
        }
        Ok(())
    }

    /// A job that failed for good (or ran out of attempts) with `e`: the
    /// job failed, its upload free to register again, a new image's
    /// placeholder failed (to expire) and its bytes removed.
    async fn record_failed(&self, job: &Job, e: Error, fence: i64) -> Result<()> {
        let uuid = job.image_uuid;
        tracing::warn!(image.uuid = %uuid, code = e.code(), error = %e, "registration failed");
        let (code, message) = (e.code().to_string(), e.to_string());
        let lifespan = self.placeholder_lifespan_days;
        let kind = job.kind;
        let upload = job.upload_id;
        let clock = self.clock.clone();
        self.db
            .write(move |c| {
                check_job_fence(c, uuid, fence)?;
                if let Some(id) = upload {
                    c.upload_unmark_registered(id, uuid)?; // the upload may be registered again
                }
                if kind == JobKind::Register
                    && let Some(mut img) = c.image_get(uuid)?
                {
                    img.placeholder = Some(Placeholder::Failed);
                    img.reserved_bytes = None;
                    img.error = Some(json!({"code": code, "message": message}));
                    let exp = placeholder_expiry(clock.timestamp(), lifespan);
                    img.expires_at = Some(exp.into());
                    c.image_update(&img)?;
                }
                c.job_set_state(
                    uuid,
                    JobState::Failed,
                    Some((&code, &message)),
                    clock.timestamp(),
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        // A new image keeps no bytes; an attach left the old file alone
        // (a refused stream is never committed).
        if job.kind == JobKind::Register {
            let _ = self
                .stores
                .get(DEST_STOR)
                .delete(&image_file_key(DEST_STOR, &uuid))
                .await;
        }
        Ok(())
    }
}

/// In a write transaction: put `file` on the job's image in place of its
/// files (a registration also ends the placeholder and, asked to, activates
/// it) and mark the job done; the files replaced, or None (the job
/// deleted too) if the image was deleted meanwhile.
fn install_file(
    c: &dyn Meta,
    job: &Job,
    file: ImageFile,
    fence: i64,
    clock: &Clock,
) -> Result<Option<Vec<ImageFile>>> {
    let uuid = job.image_uuid;
    check_job_fence(c, uuid, fence)?;
    let Some(mut img) = c.image_get(uuid)? else {
        c.job_delete(uuid)?;
        return Ok(None); // deleted meanwhile
    };
    let old = img.files.clone();
    img.files = vec![file];
    if job.kind == JobKind::Register {
        img.placeholder = None;
        img.reserved_bytes = None;
        img.error = None;
        if job.activate {
            img.activated = true;
            if img.published_at.is_none() {
                img.published_at = Some(clock.timestamp().into());
            }
        }
    }
    c.image_update(&img)?;
    c.job_set_state(uuid, JobState::Done, None, clock.timestamp())?;
    Ok(Some(old))
}

/// In a write transaction: refuse if `fence` no longer holds the job's
/// lease (another node took the job over; it records the outcome).
fn check_job_fence(c: &dyn Meta, image: Uuid, fence: i64) -> Result<()> {
    if c.lease_holds(&format!("job:{image}"), fence)? {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "the registration of {image} was taken over by another node"
        )))
    }
}
