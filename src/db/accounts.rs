//! SQL for accounts and their bearer tokens (kept only as SHA-256 digests).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest;
use uuid::Uuid;

use super::{DbError, Result};

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

/// Create an account with a first token; returns the account and the token.
/// The caller has validated `login` (`identity::check_login`); a login or
/// uuid that exists is `DbError::Conflict`.
pub fn create(
    conn: &Connection,
    login: &str,
    operator: bool,
    uuid: Option<Uuid>,
) -> Result<(Account, String)> {
    let acct = Account {
        uuid: uuid.unwrap_or_else(Uuid::new_v4),
        login: login.to_string(),
        operator,
    };
    let now = crate::manifest::now_iso();
    conn.execute(
        "INSERT INTO accounts (uuid, login, operator, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![acct.uuid.to_string(), acct.login, operator as i64, now],
    )
    .map_err(|e| DbError::conflict("account", e))?;
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
            uuid: u.parse().map_err(DbError::corrupt("account uuid"))?,
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

/// Look an account up by login.
pub fn by_login(conn: &Connection, login: &str) -> Result<Option<Account>> {
    conn.query_row(
        "SELECT uuid, operator FROM accounts WHERE login = ?1",
        params![login],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )
    .optional()?
    .map(|(u, op)| {
        Ok(Account {
            uuid: u.parse().map_err(DbError::corrupt("account uuid"))?,
            login: login.to_string(),
            operator: op != 0,
        })
    })
    .transpose()
}
