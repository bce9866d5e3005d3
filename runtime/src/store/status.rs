//! Statuses as enums: each status column holds a closed set of texts, and Rust code compares
//! the enum, so a typo no longer compiles.

/// Declares a status enum: the closed set of texts one status column holds. The text stays
/// the column's (and JSON's, and people's) spelling; the enum is what Rust code compares, so a
/// typo no longer compiles. [`as_str`](Self::as_str) and [`str::parse`] convert at the SQL
/// boundary only; an unknown stored text parses to [`StoreError::UnknownStatus`].
macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every status, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored (and shown) text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::store::StoreError;

            /// Reads the stored text; an unknown one is [`StoreError::UnknownStatus`].
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(crate::store::StoreError::UnknownStatus { what: $what, value: text.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, so width and alignment (`{:<7}`) apply as they did to the text.
                f.pad(self.as_str())
            }
        }
    };
}
