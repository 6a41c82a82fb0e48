//! The origin's signed decision. Only a package's origin decides it (compare-and-set on its
//! record); what it decided travels to the participants signed with its key, over the
//! package's identity, its digest and the outcome. A participant applies an outcome only
//! with that signature, and only for the package it prepared (same digest): no executor,
//! other member or outsider can invent a commit, and a lie can be proven later.

use super::keys::{BankKey, PublicKey};
use super::{hex, put, unhex};
use crate::package::{Outcome, PackageDigest, PackageKey};
use serde::{Deserialize, Serialize};

const DECISION_DOMAIN: &[u8] = b"bank-consortium/decision/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The package's digest (64 hex digits).
    #[schema(value_type = String)]
    pub digest: PackageDigest,
    pub outcome: Outcome,
    /// The origin's Ed25519 signature, hex.
    pub sig: String,
}

fn bytes(key: &PackageKey, digest: &PackageDigest, outcome: Outcome) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    put(&mut b, DECISION_DOMAIN);
    put(&mut b, key.origin.as_bytes());
    put(&mut b, key.id.as_bytes());
    put(&mut b, &digest.0);
    b.push(match outcome {
        Outcome::Commit => 1,
        Outcome::Abort => 2,
    });
    b
}

impl Decision {
    /// Signed by the origin (`origin_key` is its key; `key.origin` names it).
    pub fn sign(origin_key: &BankKey, key: &PackageKey, digest: PackageDigest, outcome: Outcome) -> Decision {
        Decision { digest, outcome, sig: hex(&origin_key.sign(&bytes(key, &digest, outcome))) }
    }

    /// Whether the package's origin, whose public key is `origin`, signed this decision.
    pub fn verify(&self, origin: &PublicKey, key: &PackageKey) -> bool {
        unhex::<64>(&self.sig).is_some_and(|sig| origin.verify(&bytes(key, &self.digest, self.outcome), &sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_origin_s_signature_over_this_package_and_outcome_verifies() {
        let origin = BankKey::from_seed([1; 32]);
        let other = BankKey::from_seed([2; 32]);
        let key = PackageKey::new("o:1", "p");
        let digest = PackageDigest([5; 32]);
        let d = Decision::sign(&origin, &key, digest, Outcome::Commit);
        assert!(d.verify(&origin.public(), &key));
        assert!(!d.verify(&other.public(), &key), "another bank's key");
        assert!(!d.verify(&origin.public(), &PackageKey::new("o:1", "q")), "another package");
        assert!(!d.verify(&origin.public(), &PackageKey::new("x:1", "p")), "another origin");
        assert!(!Decision { outcome: Outcome::Abort, ..d.clone() }.verify(&origin.public(), &key), "the outcome flipped");
        assert!(!Decision { digest: PackageDigest([6; 32]), ..d.clone() }.verify(&origin.public(), &key), "another content");
        let forged = Decision::sign(&other, &key, digest, Outcome::Commit);
        assert!(!forged.verify(&origin.public(), &key), "a member inventing the origin's commit");
        assert!(!Decision { sig: "zz".into(), ..d }.verify(&origin.public(), &key));
    }
}
