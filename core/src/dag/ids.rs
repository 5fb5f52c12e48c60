//! Identifiers: DAG ids, task ids, dataset names and their zones.

use std::fmt;
use std::str::FromStr;

use super::text::text_value;

const ID_PATTERN: &str = "^[A-Za-z0-9_.-]+$";

fn check_id(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{what} `{s}` contains `{c}`; only letters, digits, `_`, `.` and `-` are allowed"
        ));
    }
    if s.len() > 250 {
        return Err(format!("{what} `{s}` is longer than 250 characters"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident, $what:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                check_id($what, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        text_value!($name, concat!("a ", $what, ": letters, digits, `_`, `.` and `-`"), ID_PATTERN);
    };
}

id_type!(
    /// A DAG id (`[A-Za-z0-9_.-]+`).
    DagId,
    "DAG id"
);
id_type!(
    /// A task id, unique within its DAG (`[A-Za-z0-9_.-]+`).
    TaskId,
    "task id"
);

/// The zone a dataset lives in; zones keep raw, checked and derived data apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Zone {
    /// Data as extracted from its source.
    Raw,
    /// Rows that passed their contract.
    Clean,
    /// Data derived by transforms.
    Curated,
    /// Rows that failed their contract, with the reasons.
    Quarantine,
}

impl Zone {
    /// Every zone, in pipeline order.
    pub const ALL: [Zone; 4] = [Zone::Raw, Zone::Clean, Zone::Curated, Zone::Quarantine];

    /// The zone's name as written in dataset names.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Raw => "raw",
            Zone::Clean => "clean",
            Zone::Curated => "curated",
            Zone::Quarantine => "quarantine",
        }
    }
}

impl FromStr for Zone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Zone::ALL
            .into_iter()
            .find(|z| z.as_str() == s)
            .ok_or_else(|| {
                format!("unknown zone `{s}`; expected one of raw, clean, curated, quarantine")
            })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset name, `zone.name` (for example `clean.orders`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetName {
    zone: Zone,
    name: String,
}

impl DatasetName {
    /// The zone part.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The name part (after the zone).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default quarantine dataset for a clean dataset: `quarantine.<name>`.
    pub fn quarantine_of(&self) -> DatasetName {
        DatasetName {
            zone: Zone::Quarantine,
            name: self.name.clone(),
        }
    }
}

impl FromStr for DatasetName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((zone, name)) = s.split_once('.') else {
            return Err(format!(
                "dataset name `{s}` must be `zone.name` with zone raw, clean, curated or quarantine"
            ));
        };
        let zone = zone
            .parse::<Zone>()
            .map_err(|e| format!("dataset `{s}`: {e}"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "dataset `{s}`: the name after the zone must be letters, digits and `_`"
            ));
        }
        Ok(DatasetName {
            zone,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.name)
    }
}

text_value!(
    DatasetName,
    "a dataset name `zone.name`, zone one of raw, clean, curated, quarantine",
    "^(raw|clean|curated|quarantine)\\.[A-Za-z0-9_]+$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_need_a_known_zone() {
        let ok: DatasetName = "clean.orders".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.zone(), Zone::Clean);
        assert_eq!(ok.quarantine_of().to_string(), "quarantine.orders");
        let err = "staging.orders".parse::<DatasetName>().unwrap_err();
        assert!(err.contains("unknown zone `staging`"), "{err}");
        assert!("orders".parse::<DatasetName>().is_err());
        assert!("raw.".parse::<DatasetName>().is_err());
    }

    #[test]
    fn ids_refuse_spaces() {
        assert!("my dag".parse::<DagId>().is_err());
        assert!("orders_daily.v2-x".parse::<DagId>().is_ok());
    }
}
