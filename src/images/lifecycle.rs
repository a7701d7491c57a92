//! Create, import, update, activate, enable/disable, ACLs and delete: every
//! state change one read-modify-write transaction.

use super::*;
use crate::clock::Timestamp;

impl Images {
    /// CreateImage.
    pub async fn create(
        &self,
        caller: &Caller,
        body: Map<String, Value>,
        channels: Vec<String>,
    ) -> Result<Image> {
        let mut img = self.prepare_create(caller, body)?;
        img.channels = channels;
        self.insert_new(caller, img).await
    }

    /// CreateImage's checks: the new, unactivated image (not yet stored).
    pub fn prepare_create(&self, caller: &Caller, body: Map<String, Value>) -> Result<Image> {
        caller.require_auth()?;
        if body.contains_key("state") {
            return Err(Error::ValidationFailed {
                message: "invalid image data: \"state\"".into(),
                errors: vec![FieldError::msg(
                    "state",
                    FieldCode::NotAllowed,
                    "Parameter cannot be set",
                )],
            });
        }
        let mut body = body;
        if let Some(a) = caller.account {
            match body.get("owner") {
                None => {
                    body.insert("owner".into(), Value::String(a.to_string()));
                }
                Some(o) if o.as_str() != Some(a.to_string().as_str()) => {
                    return Err(Error::invalid_param(
                        "owner",
                        FieldCode::Invalid,
                        format!("invalid owner: given owner, {o}, does not match account, \"{a}\""),
                    ));
                }
                _ => {}
            }
        }
        body.entry("v").or_insert(Value::from(2));
        build_image(body, Uuid::new_v4(), false)
    }

    /// AdminImportImage: keeps uuid and published_at; upgrades v1 manifests.
    pub async fn import(
        &self,
        caller: &Caller,
        uuid: Uuid,
        body: Map<String, Value>,
        channels: Vec<String>,
    ) -> Result<Image> {
        let mut img = self.prepare_import(caller, uuid, body)?;
        img.channels = channels;
        // An existing `creating` placeholder is replaced; anything else conflicts.
        let origin = img.origin;
        let (this, caller) = (self.clone(), caller.clone());
        self.db
            .write(move |c| {
                if let Some(o) = origin {
                    check_origin_exists(c, o)?;
                }
                match c.image_get(img.uuid)? {
                    Some(old) if old.placeholder == Some(Placeholder::Creating) => {
                        this.admit(c, &caller, Some(&old), &img)?;
                        c.image_update(&img)?
                    }
                    Some(_) => return Err(Error::ImageUuidAlreadyExists(img.uuid)),
                    None => {
                        this.admit(c, &caller, None, &img)?;
                        c.image_insert(&img).map_err(Error::uuid_taken(img.uuid))?
                    }
                }
                Ok(img)
            })
            .await
    }

    /// The checks a new image's origin gets when it is stored (CreateImage
    /// and registration: the caller sees it; AdminImportImage: it exists),
    /// without storing anything: the end of a validate-only request.
    pub async fn check_new_origin(&self, caller: &Caller, img: &Image, import: bool) -> Result<()> {
        let Some(o) = img.origin else {
            return Ok(());
        };
        let caller = caller.clone();
        self.db
            .read(move |c| {
                if import {
                    check_origin_exists(c, o)
                } else {
                    check_origin(c, &caller, o)
                }
            })
            .await
    }

    /// AdminImportImage's checks: the image to import (not yet stored).
    pub fn prepare_import(
        &self,
        caller: &Caller,
        uuid: Uuid,
        mut body: Map<String, Value>,
    ) -> Result<Image> {
        caller.require_operator()?;
        upgrade_v1(&mut body);
        // A missing or non-string uuid is a mismatch with the URL's, as in
        // IMGAPI (`{uuid, Invalid}`).
        let b = body.get("uuid").map_or_else(
            || "undefined".to_string(),
            |b| b.as_str().map_or_else(|| b.to_string(), str::to_string),
        );
        if b != uuid.to_string() {
            return Err(Error::invalid_param(
                "uuid",
                FieldCode::Invalid,
                format!("URL UUID, \"{uuid}\" and body UUID, \"{b}\" do not match"),
            ));
        }
        if let Some(p) = body.get("published_at")
            && !p.is_string()
        {
            return Err(Error::invalid_param(
                "published_at",
                FieldCode::Invalid,
                "invalid \"published_at\"",
            ));
        }
        body.remove("state");
        body.remove("files");
        build_image(body, uuid, true)
    }

    async fn insert_new(&self, caller: &Caller, img: Image) -> Result<Image> {
        let origin = img.origin;
        let (this, caller) = (self.clone(), caller.clone());
        self.db
            .write(move |c| {
                if let Some(o) = origin {
                    check_origin(c, &caller, o)?;
                }
                this.admit(c, &caller, None, &img)?;
                c.image_insert(&img).map_err(Error::uuid_taken(img.uuid))?;
                Ok(img)
            })
            .await
    }

    /// Read-modify-write of one image the caller may see and owns.
    /// `if_match` is checked against the Etag first.
    pub async fn modify<F>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        if_match: Option<String>,
        f: F,
    ) -> Result<Image>
    where
        F: FnOnce(&mut Image) -> Result<()> + Send + 'static,
    {
        self.modify_tx(caller, uuid, if_match, move |_, img| f(img))
            .await
    }

    /// `modify` whose closure also reads the database (in the same
    /// transaction). The closure runs inside the one writer: keep it cheap
    /// (validate what can be validated before).
    pub(super) async fn modify_tx<F>(
        &self,
        caller: &Caller,
        uuid: Uuid,
        if_match: Option<String>,
        f: F,
    ) -> Result<Image>
    where
        F: FnOnce(&dyn Meta, &mut Image) -> Result<()> + Send + 'static,
    {
        caller.require_auth()?;
        let (this, caller) = (self.clone(), caller.clone());
        let now = self.clock.timestamp();
        self.db
            .write(move |c| {
                let mut img = match c.image_get(uuid)? {
                    Some(img) if caller.can_see(&img) => img,
                    _ => return Err(not_found(uuid)),
                };
                caller.check_owner(&img)?;
                check_if_match(if_match.as_deref(), &img)?;
                let before = img.clone();
                f(c, &mut img)?;
                // Enabled again (EnableImage, UpdateImage's state): an image
                // the lifecycle policy disabled is kept until it qualifies
                // anew.
                if before.disabled && !img.disabled {
                    c.policy_reenabled(uuid, now)?;
                }
                // A file, an icon or a new owner: within the quotas.
                this.admit(c, &caller, Some(&before), &img)?;
                c.image_update(&img)?;
                Ok(img)
            })
            .await
    }

    /// ActivateImage.
    pub async fn activate(&self, caller: &Caller, uuid: Uuid) -> Result<Image> {
        let _g = self.lock(uuid).await?;
        let clock = self.clock.clone();
        self.modify(caller, uuid, None, move |img| {
            if img.activated {
                return Err(Error::ImageAlreadyActivated(uuid));
            }
            if img.files.is_empty() {
                return Err(Error::NoActivationNoFile(uuid));
            }
            img.activated = true;
            img.placeholder = None;
            img.error = None;
            img.expires_at = None;
            if img.published_at.is_none() {
                img.published_at = Some(clock.timestamp().into());
            }
            Ok(())
        })
        .await
    }

    /// DisableImage / EnableImage.
    pub async fn set_disabled(&self, caller: &Caller, uuid: Uuid, disabled: bool) -> Result<Image> {
        self.modify(caller, uuid, None, move |img| {
            img.disabled = disabled;
            Ok(())
        })
        .await
    }

    /// AddImageAcl / RemoveImageAcl. The ACL is a set (each account once)
    /// of at most `MAX_ACL` accounts; an add that would pass the limit
    /// changes nothing (422 InvalidParameter `acl`).
    pub async fn change_acl(
        &self,
        caller: &Caller,
        uuid: Uuid,
        add: bool,
        accounts: Vec<Uuid>,
    ) -> Result<Image> {
        // Checks of the request itself run before the writer is taken.
        let mut seen = HashSet::with_capacity(accounts.len());
        let accounts: Vec<Uuid> = accounts.into_iter().filter(|a| seen.insert(*a)).collect();
        if add && accounts.len() > MAX_ACL {
            return Err(acl_too_large(accounts.len()));
        }
        self.modify(caller, uuid, None, move |img| {
            if add {
                let mut have = HashSet::with_capacity(img.acl.len() + accounts.len());
                img.acl.retain(|a| have.insert(*a));
                img.acl
                    .extend(accounts.into_iter().filter(|a| have.insert(*a)));
                if img.acl.len() > MAX_ACL {
                    return Err(acl_too_large(img.acl.len()));
                }
            } else {
                let gone: HashSet<Uuid> = accounts.into_iter().collect();
                img.acl.retain(|a| !gone.contains(a));
            }
            Ok(())
        })
        .await
    }

    /// UpdateImage: mutable fields (operators: admin fields too); `null`
    /// deletes the optional fields (`DELETABLE`) and is invalid for the
    /// others. `None` is a request without a body.
    pub async fn update(
        &self,
        caller: &Caller,
        uuid: Uuid,
        body: Option<Map<String, Value>>,
        if_match: Option<String>,
    ) -> Result<Image> {
        let body = check_update_body(body)?;
        let acting_for_account = caller.account.is_some() || !caller.operator;
        let lifespan = self.placeholder_lifespan_days;
        let clock = self.clock.clone();
        let new_origin = body
            .get("origin")
            .and_then(Value::as_str)
            .map(str::to_string);
        let update_caller = caller.clone();
        self.modify_tx(caller, uuid, if_match, move |c, img| {
            check_updatable_keys(&body, img, acting_for_account)?;
            let (raw, new_state) = merge_update(img, body)?;
            let (mut updated, state) = validated_update(raw, img, new_state)?;
            if let Some(s) = state {
                apply_state(&mut updated, s, lifespan, clock.timestamp())?;
            }
            // A new origin must be another image the caller can see.
            if new_origin.is_some()
                && let Some(o) = updated.origin
                && img.origin != Some(o)
            {
                if o == uuid {
                    return Err(Error::OriginDoesNotExist(o));
                }
                check_origin(c, &update_caller, o)?;
            }
            *img = updated;
            Ok(())
        })
        .await
    }

    /// DeleteImage: refused while other images name it as `origin`.
    pub async fn delete(&self, caller: &Caller, uuid: Uuid) -> Result<()> {
        self.delete_if(caller, uuid, |_, _| Ok(true))
            .await
            .map(drop)
    }

    /// [`Images::delete`] if `still` holds for the image, checked in the
    /// transaction that deletes it; whether it was deleted.
    pub async fn delete_if<F>(&self, caller: &Caller, uuid: Uuid, still: F) -> Result<bool>
    where
        F: FnOnce(&dyn Meta, &Image) -> Result<bool> + Send + 'static,
    {
        caller.require_auth()?;
        let _g = self.lock(uuid).await?;
        let caller2 = caller.clone();
        let img = self
            .db
            .write(move |c| {
                let img = match c.image_get(uuid)? {
                    Some(img) if caller2.can_see(&img) => img,
                    _ => return Err(not_found(uuid)),
                };
                caller2.check_owner(&img)?;
                if !still(c, &img)? {
                    return Ok(None);
                }
                let deps = c.image_dependents(uuid)?;
                if !deps.is_empty() {
                    // Name only dependents the caller may see (IMGAPI: all
                    // of fewer than 10, else 5 and a count).
                    let limit = if deps.len() >= 10 { 5 } else { deps.len() };
                    let mut list: Vec<String> = Vec::new();
                    for d in &deps {
                        if list.len() == limit {
                            break;
                        }
                        if c.image_get(*d)?.is_some_and(|i| caller2.can_see(&i)) {
                            list.push(d.to_string());
                        }
                    }
                    let shown = if list.len() < deps.len() {
                        let more = deps.len() - list.len();
                        if list.is_empty() {
                            format!("{more} not visible to you")
                        } else {
                            format!("{} and {more} more...", list.join(", "))
                        }
                    } else {
                        list.join(", ")
                    };
                    return Err(Error::ImageHasDependentImages(format!(
                        "image \"{uuid}\" has {} dependent incremental image(s): {shown}",
                        deps.len()
                    )));
                }
                c.image_delete(uuid)?;
                Ok(Some(img))
            })
            .await?;
        let Some(img) = img else { return Ok(false) };
        self.remove_stored(&img).await;
        Ok(true)
    }

    /// The lifecycle policy disables `uuid` by `rule`, to be deleted from
    /// `delete_after` on: the mark and the change in one transaction, and
    /// only if the image is still active (not if its owner disabled it
    /// meanwhile). Whether it did.
    pub async fn disable_by_policy(
        &self,
        uuid: Uuid,
        rule: String,
        delete_after: Timestamp,
    ) -> Result<bool> {
        let at = self.clock.timestamp();
        self.db
            .write(move |c| {
                let Some(mut img) = c.image_get(uuid)? else {
                    return Ok(false);
                };
                if !img.activated || img.disabled {
                    return Ok(false);
                }
                c.policy_mark_disabled(uuid, &rule, at, delete_after)?;
                img.disabled = true;
                c.image_update(&img)?;
                Ok(true)
            })
            .await
    }
}

fn check_if_match(if_match: Option<&str>, img: &Image) -> Result<()> {
    let Some(m) = if_match else { return Ok(()) };
    let etag = img.etag();
    let ok = m
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag);
    if ok {
        Ok(())
    } else {
        Err(Error::PreconditionFailed(format!(
            "if-match '{m}' didn't match etag '{etag}'"
        )))
    }
}

fn acl_too_large(n: usize) -> Error {
    Error::invalid_param(
        "acl",
        FieldCode::Invalid,
        format!("an image \"acl\" may hold at most {MAX_ACL} accounts ({n} given or resulting)"),
    )
}

/// Operator `state` updates.
fn apply_state(img: &mut Image, s: State, lifespan_days: u64, now: Timestamp) -> Result<()> {
    match s {
        State::Creating | State::Failed => {
            img.placeholder = Some(if s == State::Failed {
                Placeholder::Failed
            } else {
                Placeholder::Creating
            });
            img.activated = false;
            img.expires_at = Some(placeholder_expiry(now, lifespan_days).into());
        }
        State::Unactivated => {
            img.placeholder = None;
            img.activated = false;
            img.expires_at = None;
        }
        State::Active | State::Disabled => {
            if img.files.is_empty() {
                return Err(Error::NoActivationNoFile(img.uuid));
            }
            img.placeholder = None;
            img.activated = true;
            img.disabled = s == State::Disabled;
            img.expires_at = None;
            if img.published_at.is_none() {
                img.published_at = Some(now.into());
            }
        }
    }
    Ok(())
}

/// Check CreateImage/AdminImportImage keys, validate, and build an
/// unactivated image. A field given as `null` is invalid like any other
/// value of the wrong type (IMGAPI does not read `null` as "not given").
fn build_image(mut body: Map<String, Value>, uuid: Uuid, import: bool) -> Result<Image> {
    body.remove("files");
    body.remove("state");
    body.remove("channels");
    // The zvol fields of another type are extra parameters too, as in
    // IMGAPI (which only takes them from a zvol's manifest).
    let zvol = body.get("type").and_then(Value::as_str) == Some("zvol");
    let extra: Vec<String> = body
        .keys()
        .filter(|k| {
            let k = k.as_str();
            let known = CREATE_KEYS.contains(&k) || (import && IMPORT_EXTRA_KEYS.contains(&k));
            !known || (!zvol && ZVOL_FIELDS.contains(&k))
        })
        .cloned()
        .collect();
    if !extra.is_empty() {
        return Err(Error::InvalidParameter {
            message: format!(
                "invalid extra parameters: {}",
                extra
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            errors: extra
                .iter()
                .map(|k| FieldError::new(k.clone(), FieldCode::Invalid))
                .collect(),
        });
    }
    normalize(&mut body);
    body.insert("uuid".into(), Value::String(uuid.to_string()));
    body.entry("public").or_insert(Value::Bool(false));
    body.entry("disabled").or_insert(Value::Bool(false));
    let mut errs = validate_manifest(&body, Ctx::default());
    // An icon is added with AddImageIcon, never in a manifest.
    if body.contains_key("icon") {
        errs.push(FieldError::msg(
            "icon",
            FieldCode::Invalid,
            "\"icon\" cannot be set: use AddImageIcon",
        ));
    }
    // An origin that is a string but not a UUID names no image: IMGAPI
    // answers it as OriginDoesNotExist once the rest is valid.
    let bad_origin = body
        .get("origin")
        .and_then(Value::as_str)
        .is_some_and(|o| !is_uuid(o));
    if bad_origin {
        errs.retain(|e| e.field != "origin");
    }
    if !errs.is_empty() {
        return Err(Error::validation(errs));
    }
    if bad_origin {
        return Err(Error::OriginDoesNotExist(Uuid::nil()));
    }
    body.remove("icon");
    body.insert("activated".into(), Value::Bool(false));
    serde_json::from_value(Value::Object(body)).map_err(|e| {
        // Validation should have refused whatever does not deserialize.
        tracing::warn!(error = %e, "a validated manifest does not deserialize");
        Error::validation(vec![FieldError::msg(
            "manifest",
            FieldCode::Invalid,
            "invalid image data",
        )])
    })
}

/// When a placeholder made at `now` expires (`lifespan_days` later).
pub fn placeholder_expiry(now: Timestamp, lifespan_days: u64) -> Timestamp {
    let days = i64::try_from(lifespan_days).unwrap_or(i64::MAX);
    now.plus(chrono::Duration::try_days(days).unwrap_or(chrono::Duration::MAX))
}

/// UpdateImage's checks before the writer is taken: a body, not empty,
/// and the sizes of what it gives within limits (the merged image is
/// checked again inside).
fn check_update_body(body: Option<Map<String, Value>>) -> Result<Map<String, Value>> {
    let Some(body) = body else {
        return Err(Error::ValidationFailed {
            message: "missing request body".into(),
            errors: vec![FieldError::new("body", FieldCode::MissingParameter)],
        });
    };
    if body.is_empty() {
        return Err(Error::ValidationFailed {
            message: "invalid image update data: no parameters provided".into(),
            errors: vec![],
        });
    }
    // Sizes of what is given are checked before the writer is taken
    // (the merged image is checked again inside).
    let mut given = body.clone();
    given.retain(|_, v| !v.is_null());
    normalize(&mut given);
    let errs = check_limits(&given);
    if !errs.is_empty() {
        return Err(Error::validation(errs));
    }
    drop(given);
    Ok(body)
}

/// Refuse an update of `img` naming a field the caller may not change:
/// an admin field unless an operator acts for no account (and `origin`
/// only while unactivated), `channels`, or a field that is not mutable.
fn check_updatable_keys(
    body: &Map<String, Value>,
    img: &Image,
    acting_for_account: bool,
) -> Result<()> {
    let mut errs = Vec::new();
    for k in body.keys() {
        let k = k.as_str();
        if ADMIN_MUTABLE.contains(&k) {
            if acting_for_account {
                errs.push(FieldError::msg(
                    k,
                    FieldCode::NotAllowed,
                    "Can only be updated by operators",
                ));
            } else if k == "origin" && img.activated {
                errs.push(FieldError::msg(
                    k,
                    FieldCode::NotAllowed,
                    "Can only be updated on unactivated images",
                ));
            }
        } else if k == "channels" {
            errs.push(FieldError::msg(
                k,
                FieldCode::Invalid,
                "channels are changed with ChannelAddImage and DeleteImage",
            ));
        } else if !MUTABLE.contains(&k) {
            errs.push(FieldError::msg(
                k,
                FieldCode::NotAllowed,
                "Parameter cannot be updated",
            ));
        }
    }
    if !errs.is_empty() {
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        return Err(Error::ValidationFailed {
            message: format!("invalid image update data: {}", fields.join(", ")),
            errors: errs,
        });
    }
    Ok(())
}

/// The manifest of `img` with the update `body` merged in (`null`
/// removing a deletable field), and the `state` it asks for, if any.
fn merge_update(
    img: &Image,
    body: Map<String, Value>,
) -> Result<(Map<String, Value>, Option<Value>)> {
    let mut raw = match serde_json::to_value(img).map_err(Error::internal)? {
        Value::Object(m) => m,
        _ => return Err(Error::internal("image is not an object")),
    };
    let mut new_state = None;
    for (k, v) in body {
        if k == "state" {
            new_state = Some(v);
            continue;
        }
        let deletable = DELETABLE.contains(&k.as_str())
            || (ZVOL_FIELDS.contains(&k.as_str()) && img.type_ != "zvol");
        if v.is_null() && deletable {
            raw.remove(&k);
        } else {
            raw.insert(k, v);
        }
    }
    Ok((raw, new_state))
}

/// The merged manifest `raw` of an update of `img`, normalized and
/// validated, as an image; and the state `new_state` asks for, if any.
fn validated_update(
    mut raw: Map<String, Value>,
    img: &Image,
    new_state: Option<Value>,
) -> Result<(Image, Option<State>)> {
    normalize(&mut raw);
    let placeholder = matches!(img.state(), State::Creating | State::Failed);
    let mut errs = validate_manifest(&raw, Ctx { placeholder });
    let state = match &new_state {
        None => None,
        Some(v) => match v.as_str().and_then(State::parse) {
            Some(s) => Some(s),
            None => {
                errs.push(FieldError::new("state", FieldCode::Invalid));
                None
            }
        },
    };
    if !errs.is_empty() {
        return Err(Error::validation(errs));
    }
    let updated: Image = serde_json::from_value(Value::Object(raw)).map_err(|e| {
        // Validation should have refused whatever does not deserialize.
        tracing::warn!(error = %e, "a validated update does not deserialize");
        Error::validation(vec![FieldError::msg(
            "manifest",
            FieldCode::Invalid,
            "invalid image data",
        )])
    })?;
    Ok((updated, state))
}
