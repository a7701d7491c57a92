//! SQL for accounts and their bearer tokens (kept only as SHA-256 digests).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest;
use uuid::Uuid;

use crate::error::{Error, FieldCode, Result};

/// An account that may authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uuid: Uuid,
    pub login: String,
    pub operator: bool,
}

/// The stored form of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A new random token (244 random bits).
pub fn new_token() -> String {
    format!(
        "imgapi_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// Logins: like Triton's, `^[a-zA-Z][a-zA-Z0-9_.@-]{2,63}$`; `imgapi` and
/// `assets` are reserved (they name storage namespaces of the service).
pub fn valid_login(login: &str) -> bool {
    let mut chars = login.chars();
    (3..=64).contains(&login.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
        && !matches!(login, "imgapi" | "assets")
}

/// Create an account with a first token; returns the account and the token.
pub fn create(
    conn: &Connection,
    login: &str,
    operator: bool,
    uuid: Option<Uuid>,
) -> Result<(Account, String)> {
    if !valid_login(login) {
        return Err(Error::invalid_param(
            "login",
            FieldCode::Invalid,
            format!("invalid login \"{login}\""),
        ));
    }
    let acct = Account {
        uuid: uuid.unwrap_or_else(Uuid::new_v4),
        login: login.to_string(),
        operator,
    };
    let now = crate::manifest::now_iso();
    let r = conn.execute(
        "INSERT INTO accounts (uuid, login, operator, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![acct.uuid.to_string(), acct.login, operator as i64, now],
    );
    if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r
        && e.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return Err(Error::invalid_param(
            "login",
            FieldCode::Invalid,
            format!("account \"{login}\" already exists"),
        ));
    }
    r?;
    let token = new_token();
    conn.execute(
        "INSERT INTO tokens (token_sha256, account, created_at) VALUES (?1, ?2, ?3)",
        params![token_digest(&token), acct.uuid.to_string(), now],
    )?;
    Ok((acct, token))
}

/// The account a token belongs to.
pub fn by_token(conn: &Connection, token: &str) -> Result<Option<Account>> {
    conn.query_row(
        "SELECT a.uuid, a.login, a.operator FROM tokens t JOIN accounts a ON a.uuid = t.account \
         WHERE t.token_sha256 = ?1",
        params![token_digest(token)],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )
    .optional()?
    .map(|(u, login, op)| {
        Ok(Account {
            uuid: u.parse().map_err(Error::internal)?,
            login,
            operator: op != 0,
        })
    })
    .transpose()
}

/// Look an account up by uuid.
pub fn by_uuid(conn: &Connection, uuid: Uuid) -> Result<Option<Account>> {
    conn.query_row(
        "SELECT login, operator FROM accounts WHERE uuid = ?1",
        params![uuid.to_string()],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )
    .optional()?
    .map(|(login, op)| {
        Ok(Account {
            uuid,
            login,
            operator: op != 0,
        })
    })
    .transpose()
}
