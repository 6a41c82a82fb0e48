//! What a user signs besides packages: registering their key at a bank (a proof that they
//! hold the private key), and opening an account (every holder agrees). Each statement is
//! domain-separated and length-prefixed like every signed thing of the consortium.

use super::keys::{PublicKey, UserKey};
use super::{hex, put, unhex};
use crate::domain::{AccountKind, Cpf};

const REGISTER_DOMAIN: &[u8] = b"bank-consortium/register/v1";
const OPEN_ACCOUNT_DOMAIN: &[u8] = b"bank-consortium/open-account/v1";

/// How far from the bank's clock an account opening's time may be.
pub const OPEN_ACCOUNT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// "I, holder of this key, register as `cpf` at `bank`."
pub fn register_message(bank: &str, cpf: &Cpf, key_hex: &str) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, REGISTER_DOMAIN);
    put(&mut m, bank.as_bytes());
    put(&mut m, cpf.as_str().as_bytes());
    put(&mut m, key_hex.as_bytes());
    m
}

/// "We, the holders, open an account of `kind` at `bank`, at `time_ms`."
pub fn open_account_message(bank: &str, kind: AccountKind, holders: &[Cpf], time_ms: u64) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, OPEN_ACCOUNT_DOMAIN);
    put(&mut m, bank.as_bytes());
    put(&mut m, format!("{kind:?}").as_bytes());
    m.extend_from_slice(&(holders.len() as u32).to_be_bytes());
    for h in holders {
        put(&mut m, h.as_str().as_bytes());
    }
    m.extend_from_slice(&time_ms.to_be_bytes());
    m
}

pub fn sign(key: &UserKey, message: &[u8]) -> String {
    hex(&key.sign(message))
}

/// Whether `sig_hex` is `key`'s signature of `message`.
pub fn verify(key: &PublicKey, message: &[u8], sig_hex: &str) -> bool {
    unhex::<64>(sig_hex).is_some_and(|s| key.verify(message, &s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_proof_is_for_one_bank_cpf_and_key() {
        let k = UserKey::from_seed([7; 32]);
        let (c, other) = (Cpf::from_base(123_456_789), Cpf::from_base(987_654_321));
        let key_hex = k.public().to_hex();
        let sig = sign(&k, &register_message("a:1", &c, &key_hex));
        assert!(verify(&k.public(), &register_message("a:1", &c, &key_hex), &sig));
        assert!(!verify(&k.public(), &register_message("b:1", &c, &key_hex), &sig), "another bank");
        assert!(!verify(&k.public(), &register_message("a:1", &other, &key_hex), &sig), "another CPF");
        assert!(!verify(&k.public(), &register_message("a:1", &c, &key_hex), "00"), "not a signature");
        let m1 = open_account_message("a:1", AccountKind::Joint, &[c.clone(), other.clone()], 5);
        assert_ne!(m1, open_account_message("a:1", AccountKind::Joint, &[c], 5));
    }
}
