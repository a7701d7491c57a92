//! The placeholder reaper: expired `creating`/`failed` images are removed
//! (expired by the service's clock).

use super::*;

/// Delete expired placeholders (failed/creating) every 30 minutes.
pub async fn reap_placeholders_forever(images: Images) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1800));
    loop {
        tick.tick().await;
        let round = async {
            if let Err(e) = images.reap_placeholders().await {
                tracing::warn!(error = %e, "placeholder reaper failed");
            }
        };
        crate::lease::alone(&images.db, "placeholder-reaper", round).await;
    }
}

impl Images {
    /// Delete placeholders whose `expires_at` has passed; returns how many.
    pub async fn reap_placeholders(&self) -> Result<usize> {
        let now = self.clock.timestamp();
        let gone = self
            .db
            .write(move |c| {
                let mut gone = Vec::new();
                for u in c.image_expired_placeholders(now)? {
                    if let Some(img) = c.image_get(u)? {
                        c.image_delete(u)?;
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
