//! Client authentication: HS256 JWTs checked on the WebSocket upgrade and on every
//! message, against the environment's wall clock (so clock skew and jumps are faults a
//! scenario can inject). Expiry is checked here, not by the JWT library, because the
//! library reads the machine's clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The user's role at issue time (`admin`, `member`, `viewer`).
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not a token, wrong signature or algorithm, missing claims.
    Invalid(String),
    /// Expired `seconds_ago` seconds ago (beyond the skew tolerance).
    Expired { seconds_ago: u64 },
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Invalid(why) => write!(f, "invalid token: {why}"),
            AuthError::Expired { seconds_ago } => {
                write!(f, "token expired {seconds_ago} s ago")
            }
        }
    }
}

/// Why a token failed to verify, in words (the library's own text is a variant name).
fn in_words(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidToken => "not a JWT (three dot-separated base64url parts)",
        ErrorKind::InvalidSignature => "its signature does not match this server's secret",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "it is not signed with HS256"
        }
        ErrorKind::MissingRequiredClaim(_) => "a required claim (sub, role, exp) is missing",
        ErrorKind::ImmatureSignature => "it is not valid yet",
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => "its parts do not decode",
        _ => "it cannot be verified",
    }
}

/// Issues and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Accepted clock difference between the issuer and this server.
    pub skew: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], skew: Duration) -> Self {
        assert!(!secret.is_empty(), "a token secret must not be empty");
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            skew,
        }
    }

    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Checks signature and claims, then expiry against `now_unix_s` with the skew
    /// tolerance.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::Invalid(in_words(&e).to_string()))?;
        let claims = data.claims;
        let deadline = claims.exp.saturating_add(self.skew.as_secs());
        if now_unix_s >= deadline {
            return Err(AuthError::Expired {
                seconds_ago: now_unix_s - claims.exp,
            });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "ana".into(),
            role: "member".into(),
            exp,
        }
    }

    #[test]
    fn tokens_verify_until_expiry_plus_skew() {
        let keys = TokenKeys::new(b"secret", Duration::from_secs(30));
        let t = keys.issue(&claims(1_000));
        assert_eq!(keys.verify(&t, 900), Ok(claims(1_000)));
        assert_eq!(keys.verify(&t, 1_029), Ok(claims(1_000)));
        assert_eq!(
            keys.verify(&t, 1_030),
            Err(AuthError::Expired { seconds_ago: 30 })
        );
    }

    #[test]
    fn forged_and_garbage_tokens_are_invalid() {
        let keys = TokenKeys::new(b"secret", Duration::ZERO);
        let other = TokenKeys::new(b"other", Duration::ZERO);
        let forged = other.issue(&claims(u64::MAX / 2));
        assert!(matches!(
            keys.verify(&forged, 0),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            keys.verify("x.y.z", 0),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(keys.verify("", 0), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn a_refused_token_is_explained_in_words_not_variant_names() {
        let keys = TokenKeys::new(b"secret", Duration::ZERO);
        let forged = TokenKeys::new(b"other", Duration::ZERO).issue(&claims(u64::MAX / 2));
        let said = |token: &str| keys.verify(token, 0).unwrap_err().to_string();
        assert_eq!(
            said(""),
            "invalid token: not a JWT (three dot-separated base64url parts)"
        );
        assert_eq!(
            said(&forged),
            "invalid token: its signature does not match this server's secret"
        );
        for token in ["", "x.y.z", forged.as_str()] {
            let text = said(token);
            assert!(
                !crate::gateway::inbound::tests::has_camel_case(&text),
                "a type or variant name in {text:?}"
            );
        }
    }
}
