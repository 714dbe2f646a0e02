//! How `msiClientId` names a user-assigned managed identity, and how that name goes to IMDS:
//! a GUID is the identity's client id (`client_id`), `object_id:<GUID>` its object (principal)
//! id (`object_id`), and an ARM resource id
//! (`/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
//! any case) its resource id (`msi_res_id`). The one parser both `validate` and the credential use.

use std::fmt;

/// The prefix that marks an object id in `msiClientId`.
pub const OBJECT_ID_PREFIX: &str = "object_id:";

/// A user-assigned managed identity, as IMDS is asked for it. Serialized as `msiClientId` is
/// written ([`ManagedIdentityId::setting`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManagedIdentityId {
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

/// Why an `msiClientId` value names no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsiIdError {
    /// Only `x` and `-`: the documentation's placeholder `xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx`.
    Placeholder,
    /// Neither a GUID, `object_id:<GUID>`, nor a user-assigned identity resource id.
    Unrecognised(String),
}

impl fmt::Display for MsiIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsiIdError::Placeholder => f.write_str("is the documentation's placeholder"),
            MsiIdError::Unrecognised(why) => f.write_str(why),
        }
    }
}

impl ManagedIdentityId {
    /// Reads an `msiClientId` value (trimmed, not empty).
    pub fn parse(value: &str) -> Result<ManagedIdentityId, MsiIdError> {
        let value = value.trim();
        if is_guid(value) {
            return Ok(ManagedIdentityId::ClientId(value.to_owned()));
        }
        if let Some(rest) = value
            .get(..OBJECT_ID_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(OBJECT_ID_PREFIX))
            .map(|_| value[OBJECT_ID_PREFIX.len()..].trim())
        {
            return if is_guid(rest) {
                Ok(ManagedIdentityId::ObjectId(rest.to_owned()))
            } else {
                Err(MsiIdError::Unrecognised(format!(
                    "names an object id, but {rest:?} is not a GUID"
                )))
            };
        }
        if value.starts_with('/') {
            return if is_user_assigned_resource_id(value) {
                Ok(ManagedIdentityId::ResourceId(value.to_owned()))
            } else {
                Err(MsiIdError::Unrecognised(
                    "starts with '/' but is not a user-assigned identity's resource id \
                     (/subscriptions/<subscription>/resourceGroups/<group>/providers/\
                     Microsoft.ManagedIdentity/userAssignedIdentities/<name>)"
                        .to_owned(),
                ))
            };
        }
        if !value.is_empty() && value.bytes().all(|b| matches!(b, b'x' | b'X' | b'-')) {
            return Err(MsiIdError::Placeholder);
        }
        Err(MsiIdError::Unrecognised(
            "is neither a client id (a GUID), an object id (object_id:<GUID>) nor a \
             user-assigned identity's resource id"
                .to_owned(),
        ))
    }

    /// Like [`Self::parse`], taking anything unrecognised as a client id (IMDS then says what
    /// it thinks of it; `validate` has reported it already).
    pub fn parse_lenient(value: &str) -> ManagedIdentityId {
        ManagedIdentityId::parse(value)
            .unwrap_or_else(|_| ManagedIdentityId::ClientId(value.trim().to_owned()))
    }

    /// The identity as `msiClientId` writes it: the GUID, `object_id:<GUID>`, or the resource id
    /// (what [`Self::parse`] reads back).
    pub fn setting(&self) -> String {
        match self {
            ManagedIdentityId::ClientId(id) | ManagedIdentityId::ResourceId(id) => id.clone(),
            ManagedIdentityId::ObjectId(id) => format!("{OBJECT_ID_PREFIX}{id}"),
        }
    }

    /// The IMDS query parameter and its value.
    pub fn query(&self) -> (&'static str, &str) {
        match self {
            ManagedIdentityId::ClientId(id) => ("client_id", id),
            ManagedIdentityId::ObjectId(id) => ("object_id", id),
            ManagedIdentityId::ResourceId(id) => ("msi_res_id", id),
        }
    }
}

impl fmt::Display for ManagedIdentityId {
    /// "client id …", "object id …", "resource id …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedIdentityId::ClientId(id) => write!(f, "client id {id}"),
            ManagedIdentityId::ObjectId(id) => write!(f, "object id {id}"),
            ManagedIdentityId::ResourceId(id) => write!(f, "resource id {id}"),
        }
    }
}

impl serde::Serialize for ManagedIdentityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.setting())
    }
}

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `/subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// case-insensitive, no empty segment, nothing after the name.
fn is_user_assigned_resource_id(s: &str) -> bool {
    let segments: Vec<&str> = s.trim_end_matches('/').split('/').collect();
    let [
        "",
        subscriptions,
        subscription,
        resource_groups,
        group,
        providers,
        namespace,
        kind,
        name,
    ] = segments.as_slice()
    else {
        return false;
    };
    subscriptions.eq_ignore_ascii_case("subscriptions")
        && resource_groups.eq_ignore_ascii_case("resourceGroups")
        && providers.eq_ignore_ascii_case("providers")
        && namespace.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && kind.eq_ignore_ascii_case("userAssignedIdentities")
        && [subscription, group, name]
            .iter()
            .all(|s| !s.is_empty() && !s.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_goes_to_its_imds_parameter() {
        let guid = "c7373ae5-91c2-4165-8ab6-7381d6e75619";
        assert_eq!(
            ManagedIdentityId::parse(guid).unwrap().query(),
            ("client_id", guid)
        );
        assert_eq!(
            ManagedIdentityId::parse(&format!("object_id:{guid}"))
                .unwrap()
                .query(),
            ("object_id", guid)
        );
        assert_eq!(
            ManagedIdentityId::parse(&format!(" OBJECT_ID: {guid} "))
                .unwrap()
                .query(),
            ("object_id", guid)
        );
        let rid = "/subscriptions/0000/resourcegroups/rg/providers/microsoft.managedidentity/USERASSIGNEDIDENTITIES/web";
        assert_eq!(
            ManagedIdentityId::parse(rid).unwrap().query(),
            ("msi_res_id", rid)
        );
        for setting in [guid.to_owned(), format!("object_id:{guid}"), rid.to_owned()] {
            let id = ManagedIdentityId::parse(&setting).unwrap();
            assert_eq!(id.setting(), setting);
            assert_eq!(ManagedIdentityId::parse(&id.setting()).unwrap(), id);
        }
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        for bad in [
            "web-identity",
            "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/",
            "object_id:web",
            "c7373ae5-91c2-4165-8ab6",
        ] {
            assert!(
                matches!(
                    ManagedIdentityId::parse(bad),
                    Err(MsiIdError::Unrecognised(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            ManagedIdentityId::parse("xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"),
            Err(MsiIdError::Placeholder)
        );
    }
}
