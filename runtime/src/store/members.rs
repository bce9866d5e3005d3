//! The member directory.

use serde_json::{Map, Value};

use super::sql::{params, Row};
use super::{Reader, StoreError, Tx};

/// A member as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Region.
    pub region: Option<String>,
    /// The manager's member id.
    pub manager: Option<String>,
    /// Still with the team.
    pub active: bool,
    /// How many open records they can take.
    pub capacity: Option<i64>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Attributes the app declared.
    pub extra: Map<String, Value>,
    /// Away from this day (`YYYY-MM-DD`, in the app's zone); none: from now.
    pub away_from: Option<String>,
    /// Away through this day; none: not away.
    pub away_until: Option<String>,
    /// Who decides approvals in their place while they are away.
    pub delegate_to: Option<String>,
}

impl MemberRow {
    /// Away on `today` (`YYYY-MM-DD`): `away_until` is set, not past, and `away_from` has come.
    pub fn away_on(&self, today: &str) -> bool {
        self.away_until.as_deref().is_some_and(|u| today <= u) && self.away_from.as_deref().is_none_or(|f| f <= today)
    }

    /// The member as its audit events record it. The absence columns appear only when set, so
    /// rows written before they existed still verify.
    pub fn audit_body(&self) -> Value {
        let mut body = serde_json::json!({"id": self.id, "name": self.name, "roles": self.roles, "region": self.region,
            "manager": self.manager, "active": self.active, "capacity": self.capacity, "email": self.email,
            "phone": self.phone, "extra": self.extra});
        for (key, value) in
            [("away_from", &self.away_from), ("away_until", &self.away_until), ("delegate_to", &self.delegate_to)]
        {
            if let (Some(v), Some(map)) = (value, body.as_object_mut()) {
                map.insert(key.into(), Value::String(v.clone()));
            }
        }
        body
    }
}

pub(super) const COLUMNS: &str =
    "id, name, roles, region, manager, active, capacity, email, phone, extra, away_from, away_until, delegate_to";

/// A member row as stored, with its roles and extra attributes still JSON text.
pub(super) fn read(r: &Row<'_>) -> Result<(MemberRow, String, String), StoreError> {
    Ok((
        MemberRow {
            id: r.get(0)?,
            name: r.get(1)?,
            roles: Vec::new(),
            region: r.get(3)?,
            manager: r.get(4)?,
            active: r.get(5)?,
            capacity: r.get(6)?,
            email: r.get(7)?,
            phone: r.get(8)?,
            extra: Map::new(),
            away_from: r.get(10)?,
            away_until: r.get(11)?,
            delegate_to: r.get(12)?,
        },
        r.get(2)?,
        r.get(9)?,
    ))
}

fn finish((mut m, roles, extra): (MemberRow, String, String)) -> Result<MemberRow, StoreError> {
    m.roles = serde_json::from_str(&roles)?;
    m.extra = serde_json::from_str(&extra)?;
    Ok(m)
}

/// A member by id.
pub(crate) fn get(conn: &Reader, id: &str) -> Result<Option<MemberRow>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM members WHERE id = ?1"))?
        .query_opt([id], read)?
        .map(finish)
        .transpose()
}

/// Every member, by id.
pub(crate) fn list(conn: &Reader) -> Result<Vec<MemberRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM members ORDER BY id"))?;
    let rows = stmt.query_map([], read)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(finish(r?)?);
    }
    Ok(out)
}

/// Inserts or replaces a member.
pub(crate) fn upsert(tx: &Tx<'_>, m: &MemberRow, at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO members (id, name, roles, region, manager, active, capacity, email, phone, extra, updated_at,
                              away_from, away_until, delegate_to)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (id) DO UPDATE SET name = ?2, roles = ?3, region = ?4, manager = ?5, active = ?6,
            capacity = ?7, email = ?8, phone = ?9, extra = ?10, updated_at = ?11,
            away_from = ?12, away_until = ?13, delegate_to = ?14",
    )?
    .execute(params![
        m.id,
        m.name,
        serde_json::to_string(&m.roles)?,
        m.region,
        m.manager,
        m.active,
        m.capacity,
        m.email,
        m.phone,
        serde_json::to_string(&m.extra)?,
        at,
        m.away_from,
        m.away_until,
        m.delegate_to
    ])?;
    Ok(())
}
