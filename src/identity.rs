//! Who is calling: an operator (optionally acting for an account), an
//! account, or nobody; and what each may see (IMGAPI visibility rules).

use uuid::Uuid;

use crate::error::{Error, Result};
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
