//! Realistic leaf values: formats, and fakes chosen by property name.

use base64::Engine;
use fake::{
    Fake,
    faker::{
        address::en::{
            BuildingNumber, CityName, CountryCode, CountryName, StateName, StreetName, TimeZone,
            ZipCode,
        },
        company::en::CompanyName,
        internet::en::{IPv4, IPv6, Username},
        lorem::en::{Sentence, Word, Words},
        name::en::{FirstName, LastName},
        phone_number::en::PhoneNumber,
    },
};
use rand::{RngExt, rngs::Xoshiro256PlusPlus};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

type Rng = Xoshiro256PlusPlus;

/// Generated instants fall within a year after this one (2026-01-01T00:00:00Z),
/// so answers never depend on the wall clock.
const EPOCH: i64 = 1_767_225_600;

pub fn word(rng: &mut Rng) -> String {
    Word().fake_with_rng(rng)
}

fn instant(rng: &mut Rng) -> OffsetDateTime {
    let offset = rng.random_range(0..365 * 24 * 3600);
    OffsetDateTime::from_unix_timestamp(EPOCH + offset).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn alphanumeric(rng: &mut Rng, length: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..length)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// A value for a string `format`, or `None` for formats with no generator.
pub fn formatted(format: &str, rng: &mut Rng) -> Option<String> {
    Some(match format {
        "date-time" => instant(rng).format(&Rfc3339).ok()?,
        "date" => instant(rng)
            .format(format_description!("[year]-[month]-[day]"))
            .ok()?,
        "time" => instant(rng)
            .format(format_description!("[hour]:[minute]:[second]Z"))
            .ok()?,
        "uuid" => {
            let mut bytes = [0u8; 16];
            rng.fill(&mut bytes);
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string()
        }
        "email" | "idn-email" => safe_email(rng),
        "uri" | "url" | "iri" => format!("https://example.com/{}", word(rng)),
        "uri-reference" | "iri-reference" => format!("/{}", word(rng)),
        "uri-template" => format!("https://example.com/{}/{{id}}", word(rng)),
        "hostname" | "idn-hostname" => format!("{}.example.com", word(rng)),
        "ipv4" => IPv4().fake_with_rng(rng),
        "ipv6" => IPv6().fake_with_rng(rng),
        "byte" => {
            let bytes: Vec<u8> = (0..12).map(|_| rng.random()).collect();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
        "binary" => alphanumeric(rng, 16),
        "password" => alphanumeric(rng, 16),
        "duration" => format!("P{}D", rng.random_range(1..30)),
        "int32" | "int64" | "integer" => rng.random_range(1..100_000).to_string(),
        "decimal" | "double" | "float" | "number" => format!(
            "{}.{:02}",
            rng.random_range(1..1000),
            rng.random_range(0..100)
        ),
        "json-pointer" => format!("/{}", word(rng)),
        "regex" => "^[a-z]+$".to_owned(),
        "country-code" => CountryCode().fake_with_rng(rng),
        "currency" | "currency-code" => currency(rng),
        "timezone" => TimeZone().fake_with_rng(rng),
        _ => return None,
    })
}

/// `fake`'s `Name` (its English template, `{FirstName} {LastName}`), the
/// same draws in the same order, in one allocation rather than the
/// template's two replacements.
fn full_name(rng: &mut Rng) -> String {
    let first: &str = FirstName().fake_with_rng(rng);
    let last: &str = LastName().fake_with_rng(rng);
    let mut name = String::with_capacity(first.len() + 1 + last.len());
    name.push_str(first);
    name.push(' ');
    name.push_str(last);
    name
}

/// `fake`'s `SafeEmail`, lower-cased, the same draws in the same order, in
/// one allocation (it lower-cases into one string and formats another).
fn safe_email(rng: &mut Rng) -> String {
    use rand::seq::IndexedRandom;
    let user: &str = FirstName().fake_with_rng(rng);
    let domain = ["com", "net", "org"].choose(rng).copied().unwrap_or("com");
    let mut email = String::with_capacity(user.len() + ".example.".len() + 1 + domain.len());
    email.extend(user.chars().flat_map(char::to_lowercase));
    email.push_str("@example.");
    email.push_str(domain);
    email.make_ascii_lowercase();
    email
}

fn currency(rng: &mut Rng) -> String {
    const CODES: &[&str] = &["usd", "eur", "gbp", "jpy", "cad", "aud", "chf"];
    CODES[rng.random_range(0..CODES.len())].to_owned()
}

/// Lower-cased with separators removed: `created_at` → `createdat`.
fn normalized(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A string that fits what a property of this name usually holds.
pub fn for_name(name: Option<&str>, max_length: usize, rng: &mut Rng) -> String {
    NameFake::of(name, max_length).generate(rng)
}

/// What a property's name says its strings look like, decided once per
/// schema (a synthesis plan keeps it) rather than per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameFake {
    Word,
    Email,
    FirstName,
    LastName,
    Username,
    Company,
    FullName,
    City,
    CountryCode,
    CountryName,
    State,
    Street,
    Zip,
    Phone,
    Currency,
    Sentence,
    Title,
    Url,
    TimeZone,
    Ip,
    Locale,
    Color,
    Secret,
    Instant,
    Identifier,
    Slug,
}

impl NameFake {
    /// The fake for a property called `name` whose strings are at most
    /// `max_length` characters (a country is a code when that is 3 or less).
    pub fn of(name: Option<&str>, max_length: usize) -> Self {
        let Some(name) = name else { return Self::Word };
        let raw = name.to_ascii_lowercase();
        let n = normalized(name);
        let ends = |suffix: &str| n.ends_with(suffix);
        let has = |part: &str| n.contains(part);
        if has("email") {
            Self::Email
        } else if n == "firstname" || n == "givenname" {
            Self::FirstName
        } else if n == "lastname" || n == "surname" || n == "familyname" {
            Self::LastName
        } else if has("username") || n == "login" || n == "handle" {
            Self::Username
        } else if has("company") || has("organization") || has("organisation") || n == "employer" {
            Self::Company
        } else if n == "name"
            || ends("fullname")
            || n == "displayname"
            || n == "customername"
            || n == "holdername"
        {
            Self::FullName
        } else if has("city") || n == "town" {
            Self::City
        } else if has("country") {
            if max_length <= 3 {
                Self::CountryCode
            } else {
                Self::CountryName
            }
        } else if n == "state" || n == "province" || n == "region" {
            Self::State
        } else if has("street") || n == "address" || n == "line1" || n == "addressline1" {
            Self::Street
        } else if has("zip") || has("postal") || has("postcode") {
            Self::Zip
        } else if has("phone") || has("mobile") || n == "tel" || n == "fax" {
            Self::Phone
        } else if has("currency") {
            Self::Currency
        } else if n == "description"
            || n == "summary"
            || n == "comment"
            || n == "note"
            || n == "notes"
            || n == "message"
            || n == "bio"
            || n == "text"
        {
            Self::Sentence
        } else if n == "title"
            || n == "subject"
            || n == "label"
            || n == "headline"
            || n == "caption"
        {
            Self::Title
        } else if has("url")
            || has("website")
            || has("homepage")
            || n == "href"
            || n == "link"
            || has("avatar")
            || has("image")
        {
            Self::Url
        } else if has("timezone") || n == "tz" {
            Self::TimeZone
        } else if n == "ip" || has("ipaddress") {
            Self::Ip
        } else if n == "locale" || n == "language" || n == "lang" {
            Self::Locale
        } else if n == "color" || n == "colour" {
            Self::Color
        } else if has("password") || has("secret") {
            Self::Secret
        } else if raw.ends_with("_at")
            || raw.ends_with("date")
            || n == "timestamp"
            || n == "created"
            || n == "updated"
        {
            Self::Instant
        } else if n == "id" || ends("id") || has("token") || ends("key") {
            Self::Identifier
        } else if n == "slug" {
            Self::Slug
        } else {
            Self::Word
        }
    }

    pub fn generate(self, rng: &mut Rng) -> String {
        match self {
            Self::Word => word(rng),
            Self::Email => safe_email(rng),
            Self::FirstName => FirstName().fake_with_rng(rng),
            Self::LastName => LastName().fake_with_rng(rng),
            Self::Username => Username().fake_with_rng(rng),
            Self::Company => CompanyName().fake_with_rng(rng),
            Self::FullName => full_name(rng),
            Self::City => CityName().fake_with_rng(rng),
            Self::CountryCode => CountryCode().fake_with_rng(rng),
            Self::CountryName => CountryName().fake_with_rng(rng),
            Self::State => StateName().fake_with_rng(rng),
            Self::Street => format!(
                "{} {}",
                BuildingNumber().fake_with_rng::<String, _>(rng),
                StreetName().fake_with_rng::<String, _>(rng)
            ),
            Self::Zip => ZipCode().fake_with_rng(rng),
            Self::Phone => PhoneNumber().fake_with_rng(rng),
            Self::Currency => currency(rng),
            Self::Sentence => Sentence(3..9).fake_with_rng(rng),
            Self::Title => Words(2..4).fake_with_rng::<Vec<String>, _>(rng).join(" "),
            Self::Url => format!("https://example.com/{}", word(rng)),
            Self::TimeZone => TimeZone().fake_with_rng(rng),
            Self::Ip => IPv4().fake_with_rng(rng),
            Self::Locale => "en-US".to_owned(),
            Self::Color => format!("#{:06x}", rng.random_range(0..0x100_0000)),
            Self::Secret => alphanumeric(rng, 16),
            Self::Instant => instant(rng).format(&Rfc3339).unwrap_or_default(),
            Self::Identifier => alphanumeric(rng, 16),
            Self::Slug => format!("{}-{}", word(rng), word(rng)),
        }
    }
}

/// A plausible integer range for a property of this name.
pub fn integer_range(name: Option<&str>) -> (i64, i64) {
    let n = name.map(normalized).unwrap_or_default();
    if n.contains("amount")
        || n.contains("price")
        || n.contains("cost")
        || n.contains("balance")
        || n.contains("fee")
        || n == "total"
    {
        (100, 100_000)
    } else if n == "age" {
        (18, 90)
    } else if n.contains("year") {
        (1990, 2030)
    } else if n.contains("count")
        || n.contains("quantity")
        || n == "qty"
        || n == "size"
        || n == "limit"
    {
        (1, 20)
    } else if n.contains("percent") {
        (0, 100)
    } else if n == "port" {
        (1024, 65535)
    } else if n.ends_with("at") || n.contains("timestamp") || n == "created" || n == "updated" {
        (EPOCH, EPOCH + 365 * 24 * 3600)
    } else {
        (1, 1000)
    }
}

/// A plausible decimal range for a property of this name.
pub fn number_range(name: Option<&str>) -> (f64, f64) {
    let n = name.map(normalized).unwrap_or_default();
    if n == "latitude" || n == "lat" {
        (-90.0, 90.0)
    } else if n == "longitude" || n == "lng" || n == "lon" {
        (-180.0, 180.0)
    } else if n.contains("percent") || n.contains("rate") {
        (0.0, 100.0)
    } else if n.contains("amount")
        || n.contains("price")
        || n.contains("cost")
        || n.contains("balance")
        || n == "total"
    {
        (1.0, 1000.0)
    } else {
        (0.0, 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use fake::faker::{internet::en::SafeEmail, name::en::Name};
    use rand::SeedableRng;

    use super::*;

    /// The one-allocation fakes draw what `fake`'s own do, so a sandbox's
    /// data is the same as before they were written.
    #[test]
    fn names_and_emails_match_the_fake_crate_draw_for_draw() {
        for seed in 0..2_000 {
            let (mut ours, mut theirs) = (Rng::seed_from_u64(seed), Rng::seed_from_u64(seed));
            assert_eq!(
                full_name(&mut ours),
                Name().fake_with_rng::<String, _>(&mut theirs)
            );
            assert_eq!(
                safe_email(&mut ours),
                SafeEmail()
                    .fake_with_rng::<String, _>(&mut theirs)
                    .to_ascii_lowercase()
            );
            assert_eq!(ours.random::<u64>(), theirs.random::<u64>(), "seed {seed}");
        }
    }
}
