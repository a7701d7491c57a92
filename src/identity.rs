//! Who is calling: an operator (optionally acting for an account), an
//! account, or nobody; and what each may see (IMGAPI visibility rules).

use uuid::Uuid;

use crate::error::{Error, FieldCode, Result};
use crate::manifest::Image;

/// The identity a request acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account the request acts for (`?account=` or the token's own).
    pub account: Option<Uuid>,
    /// An operator (auth none, or an operator token).
    pub operator: bool,
    /// Authenticated at all (false only for token mode without a token).
    pub authenticated: bool,
}

impl Caller {
    /// An operator acting for nobody.
    pub fn operator() -> Caller {
        Caller {
            account: None,
            operator: true,
            authenticated: true,
        }
    }

    /// Nobody (token mode, no token): sees activated public images only.
    pub fn anonymous() -> Caller {
        Caller {
            account: None,
            operator: false,
            authenticated: false,
        }
    }

    /// An account acting for itself.
    pub fn account(uuid: Uuid) -> Caller {
        Caller {
            account: Some(uuid),
            operator: false,
            authenticated: true,
        }
    }

    /// Writes need an authenticated caller.
    pub fn require_auth(&self) -> Result<()> {
        if self.authenticated {
            Ok(())
        } else {
            Err(Error::Unauthorized("authentication required".into()))
        }
    }

    /// Admin endpoints: an operator not acting for an account.
    pub fn require_operator(&self) -> Result<()> {
        self.require_auth()?;
        if self.operator && self.account.is_none() {
            Ok(())
        } else {
            Err(Error::OperatorOnly)
        }
    }

    /// May this caller see `img` at all?
    pub fn can_see(&self, img: &Image) -> bool {
        match self.account {
            Some(a) => img.visible_to(Some(a)),
            None if self.operator => true,
            None => img.activated && img.public,
        }
    }

    /// May this caller change `img`? (Call after `can_see`.)
    pub fn check_owner(&self, img: &Image) -> Result<()> {
        self.require_auth()?;
        match self.account {
            Some(a) if a != img.owner => Err(Error::NotImageOwner {
                account: a,
                image: img.uuid,
            }),
            _ => Ok(()),
        }
    }
}

/// Logins that name a storage namespace of the service or an administrative
/// role; refused (in any case) for accounts.
pub const RESERVED_LOGINS: &[&str] = &["imgapi", "assets", "admin", "root", "operator"];

/// Check a new account's login: like Triton's, `^[a-zA-Z][a-zA-Z0-9_.@-]{2,63}$`;
/// not one of `RESERVED_LOGINS`; and not UUID-shaped (hyphenated or not),
/// since a storage path's owner segment (`/{login or uuid}/stor/...`) is
/// matched against both logins and account uuids: such a login could name
/// another account's namespace.
pub fn check_login(login: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::invalid_param(
            "login",
            FieldCode::Invalid,
            format!("invalid login \"{login}\"{why}"),
        ))
    };
    let mut chars = login.chars();
    let shaped = (3..=64).contains(&login.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if !shaped {
        return refuse("");
    }
    if RESERVED_LOGINS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(login))
    {
        return refuse(": it is reserved");
    }
    if Uuid::parse_str(login).is_ok() {
        return refuse(": a login may not be a UUID (account uuids name storage namespaces)");
    }
    Ok(())
}

/// The account a bearer token belongs to (None: no such token).
pub async fn account_of_token(
    db: &crate::db::Db,
    token: String,
) -> Result<Option<crate::db::accounts::Account>> {
    Ok(db.read(move |c| c.account_by_token(&token)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins() {
        for ok in ["alice", "root-op", "b0b", "a.b@c_d-e", "deadbeef"] {
            assert!(check_login(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "1abc",
            "a b",
            "imgapi",
            "assets",
            "Admin",
            "root",
            "operator",
            "a0b6b534-2547-11e2-b758-63a2afd747d1",
            "A0B6B534-2547-11E2-B758-63A2AFD747D1",
            "a0b6b534254711e2b75863a2afd747d1",
        ] {
            assert!(check_login(bad).is_err(), "{bad}");
        }
    }
}
