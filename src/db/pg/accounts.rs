//! Accounts and their bearer tokens on PostgreSQL (same results as
//! `db::accounts`; tokens kept only as SHA-256 digests).

use uuid::Uuid;

use super::{PgConn, col};
use crate::db::Result;
use crate::db::accounts::{Account, new_token, token_digest};

/// Create an account with a first token; returns the account and the token.
/// A login or uuid that exists is `DbError::Conflict`.
pub fn create(
    c: &PgConn,
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
    c.insert_unique(
        "account",
        "INSERT INTO accounts (uuid, login, operator, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
        &[&acct.uuid, &acct.login, &operator, &now],
    )?;
    let token = new_token();
    c.execute(
        "INSERT INTO tokens (token_sha256, account, created_at) VALUES ($1, $2, $3)",
        &[&token_digest(&token), &acct.uuid, &now],
    )?;
    Ok((acct, token))
}

/// The account a token belongs to.
pub fn by_token(c: &PgConn, token: &str) -> Result<Option<Account>> {
    c.query_opt(
        "SELECT a.uuid, a.login, a.operator FROM tokens t JOIN accounts a ON a.uuid = t.account \
         WHERE t.token_sha256 = $1",
        &[&token_digest(token)],
    )?
    .map(|r| {
        Ok(Account {
            uuid: col(&r, 0)?,
            login: col(&r, 1)?,
            operator: col(&r, 2)?,
        })
    })
    .transpose()
}

/// Look an account up by uuid.
pub fn by_uuid(c: &PgConn, uuid: Uuid) -> Result<Option<Account>> {
    c.query_opt(
        "SELECT login, operator FROM accounts WHERE uuid = $1",
        &[&uuid],
    )?
    .map(|r| {
        Ok(Account {
            uuid,
            login: col(&r, 0)?,
            operator: col(&r, 1)?,
        })
    })
    .transpose()
}

/// Look an account up by login.
pub fn by_login(c: &PgConn, login: &str) -> Result<Option<Account>> {
    c.query_opt(
        "SELECT uuid, operator FROM accounts WHERE login = $1",
        &[&login],
    )?
    .map(|r| {
        Ok(Account {
            uuid: col(&r, 0)?,
            login: login.to_string(),
            operator: col(&r, 1)?,
        })
    })
    .transpose()
}
