//! What the API and UI suites share: the people of a test site.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use weir_api::auth::password;
use weir_core::access::{Role, UserRecord};
use weir_core::store::Store;

/// An admin, an operator and a viewer; each one's password is
/// `<name>-password`.
pub const PEOPLE: [(&str, Role); 3] = [
    ("ada", Role::Admin),
    ("otto", Role::Operator),
    ("vera", Role::Viewer),
];

/// Creates [`PEOPLE`] in `store`.
pub async fn add_people(store: &dyn Store) {
    for (name, role) in PEOPLE {
        store
            .create_user(&UserRecord {
                username: name.into(),
                password_hash: password::hash(&format!("{name}-password")).unwrap(),
                role,
                created_at: chrono::Utc::now(),
                last_login_at: None,
            })
            .await
            .unwrap();
    }
}
