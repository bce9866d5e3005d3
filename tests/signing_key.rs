//! The signing key lives outside the database (RELIABILITY fault "the signing secret and link
//! nonces are stored in clear"): a read-only copy of the file can neither make a link that
//! `sign` accepts nor complete one it finds, and a database from before keeps its links working
//! once its secret has moved out.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::support::Cli;

/// A quote of the template's team, approved and waiting for the customer's signature.
fn waiting_for_signature(cli: &Cli) -> String {
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 1, "unit_price": 12000.0}]});
    let created: Value = cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()]);
    let id = created["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_zhao"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_qian"]);
    id
}

fn token_of(link: &Value) -> String {
    link["link"]["token"].as_str().unwrap().to_string()
}

#[test]
fn a_copy_of_the_database_alone_can_neither_make_nor_complete_a_signing_link() {
    let cli = Cli::new("key-outside", "2026-11-23T10:00:00+08:00");
    let id = waiting_for_signature(&cli);
    let link = cli.json(&["sign-link", "quote", &id, "--as", "m_li", "--qr-dir", cli.path("qr").to_str().unwrap()]);
    let token = token_of(&link);
    let (nonce, _) = token.split_once('.').unwrap();
    // The key file is beside the database, readable by its owner only.
    let key_file = closeloop::store::key_file(&cli.db());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key_file.display());
    }
    // What an attacker with the file finds: no secret, and no nonce to sign with.
    assert_eq!(cli.query("SELECT COUNT(*) FROM install_secrets", &[]), 0);
    assert_eq!(cli.query("SELECT COUNT(*) FROM sign_links WHERE nonce = ?1", &[nonce]), 0);
    for file in [cli.db(), cli.path("closeloop.db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let found = bytes.windows(nonce.len()).any(|w| w == nonce.as_bytes());
        assert!(!found, "the nonce is in {}", file.display());
    }
    // A copy of the database, without the key file: the real token is not accepted there...
    let stolen = Cli::new("key-outside-copy", "2026-11-23T12:00:00+08:00");
    std::fs::copy(cli.db(), stolen.db()).unwrap();
    let (_, said) = stolen.fails(&["sign", &token, "--name", "王总"]);
    assert!(said.contains("no longer has") && said.contains("send the customer a new link"), "{said}");
    assert!(!closeloop::store::key_file(&stolen.db()).exists(), "signing makes no key of its own");
    // ...and a token made with anything the file holds is refused by the real installation.
    let stored: String = {
        let conn = rusqlite::Connection::open(cli.db()).unwrap();
        conn.query_row("SELECT nonce FROM sign_links", [], |r| r.get(0)).unwrap()
    };
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(stored.as_bytes()).unwrap();
    mac.update(b"sign");
    let forged = format!("{nonce}.{}", hex(&mac.finalize().into_bytes()));
    let (_, said) = cli.fails(&["sign", &forged, "--name", "王总"]);
    assert!(said.contains("not valid"), "{said}");
    // The real link, with the real key, still signs.
    let signed = cli.json(&["sign", &token, "--name", "王总"]);
    assert_eq!(signed["record"], id.as_str());
}

#[test]
fn a_key_from_the_environment_signs_instead_of_the_key_file() {
    let cli = Cli::new("key-env", "2026-11-23T10:00:00+08:00");
    let id = waiting_for_signature(&cli);
    let with_key = |args: &[&str]| {
        let out =
            cli.command(args).env("CLOSELOOP_SIGNING_KEY", "a long secret from the secret manager").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let link = with_key(&[
        "--format",
        "json",
        "sign-link",
        "quote",
        &id,
        "--as",
        "m_li",
        "--qr-dir",
        cli.path("qr").to_str().unwrap(),
    ]);
    assert!(!closeloop::store::key_file(&cli.db()).exists(), "no key file is made when the key is given");
    // Without the key (no key file, and none in the environment, where a PostgreSQL
    // installation's own would be) the link cannot be checked, and says what to do; with it,
    // it signs.
    let mut without_key = cli.command(&["sign", &token_of(&link), "--name", "王总"]);
    let out = without_key.env_remove("CLOSELOOP_SIGNING_KEY").output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success() && said.contains("no longer has"), "{said}");
    let signed = with_key(&["--format", "json", "sign", &token_of(&link), "--name", "王总"]);
    assert_eq!(signed["record"], id.as_str());
}

#[test]
fn a_database_from_before_moves_its_secret_to_the_key_file_and_its_links_still_sign() {
    let cli = Cli::new("key-legacy", "2026-11-23T10:00:00+08:00");
    let id = waiting_for_signature(&cli);
    // The database as an older closeloop left it: the secret in a table, the nonce in clear,
    // a token whose MAC covers the nonce itself.
    let (secret, nonce) = ("0123456789abcdef0123456789abcdef", "00112233445566778899aabbccddeeff");
    let (version, hash): (i64, String) = {
        let conn = rusqlite::Connection::open(cli.db()).unwrap();
        let row = conn.query_row(r#"SELECT version, data_hash FROM "rec_quote" WHERE id = ?1"#, [&id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        });
        row.unwrap()
    };
    let expires = "2026-11-30T02:00:00.000000Z";
    {
        let conn = rusqlite::Connection::open(cli.db()).unwrap();
        // The database as schema version 10 left it: no mark on links, no identity tables.
        conn.execute_batch(
            "ALTER TABLE sign_links DROP COLUMN legacy;
             DROP TABLE credentials; DROP TABLE sessions; DROP TABLE api_tokens; DROP TABLE signin_failures;
             DROP TABLE signin_links; DROP TABLE settings;
             PRAGMA user_version = 10;",
        )
        .unwrap();
        conn.execute("INSERT INTO install_secrets (name, value, created_at) VALUES ('sign', ?1, 'x')", [secret])
            .unwrap();
        conn.execute(
            "INSERT INTO sign_links (nonce, form, record, version, version_hash, expires_at, created_at, created_by)
             VALUES (?1, 'quote', ?2, ?3, ?4, ?5, '2026-11-23T02:00:00.000000Z', 'm_li')",
            rusqlite::params![nonce, id, version, hash, expires],
        )
        .unwrap();
    }
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("sign\u{1f}quote\u{1f}{id}\u{1f}{version}\u{1f}{hash}\u{1f}{expires}\u{1f}{nonce}").as_bytes());
    let token = format!("{nonce}.{}", hex(&mac.finalize().into_bytes()));
    // The first command moves the secret out; the old link signs.
    cli.ok(&["list", "quote"]);
    assert_eq!(cli.query("SELECT COUNT(*) FROM install_secrets", &[]), 0);
    assert_eq!(std::fs::read_to_string(closeloop::store::key_file(&cli.db())).unwrap(), secret);
    assert_eq!(cli.query("SELECT COUNT(*) FROM sign_links WHERE nonce = ?1", &[nonce]), 0, "the nonce is hashed");
    let signed = cli.json(&["sign", &token, "--name", "王总"]);
    assert_eq!(signed["record"], id.as_str());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
