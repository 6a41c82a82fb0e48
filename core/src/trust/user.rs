//! What a user signs besides packages: registering their key at a bank (a proof that they
//! hold the private key), opening an account (every holder agrees), rotating their key. And
//! what a bank's operator signs at the counter, with their teller key (the operator's
//! credential: a key, never a shared secret): approving a registration (identity checked in
//! person), and resetting a lost key at that bank only. Each statement is domain-separated
//! and length-prefixed like every signed thing of the consortium.

use super::keys::{PublicKey, UserKey};
use super::{hex, put, unhex};
use crate::domain::{AccountKind, Cpf};

const REGISTER_DOMAIN: &[u8] = b"bank-consortium/register/v1";
const OPEN_ACCOUNT_DOMAIN: &[u8] = b"bank-consortium/open-account/v1";
const ROTATE_DOMAIN: &[u8] = b"bank-consortium/rotate-key/v1";
const APPROVE_DOMAIN: &[u8] = b"bank-consortium/approve-registration/v1";
const RESET_DOMAIN: &[u8] = b"bank-consortium/reset-key/v1";

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

/// "I, holder of the key `cpf` has now, replace it with `new_key_hex` as rotation `seq`."
/// Not bound to a bank: banks pass it on to each other, and each checks it against its own
/// binding. The number makes an old rotation useless once a newer one applied.
pub fn rotate_message(cpf: &Cpf, new_key_hex: &str, seq: u64) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, ROTATE_DOMAIN);
    put(&mut m, cpf.as_str().as_bytes());
    put(&mut m, new_key_hex.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m
}

/// "I, an operator of `bank`, checked the person registering as `cpf` with this key."
pub fn approve_message(bank: &str, cpf: &Cpf, key_hex: &str) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, APPROVE_DOMAIN);
    put(&mut m, bank.as_bytes());
    put(&mut m, cpf.as_str().as_bytes());
    put(&mut m, key_hex.as_bytes());
    m
}

/// "I, an operator of `bank`, replace `cpf`'s key `old_key_hex` (empty: none) by
/// `new_key_hex`." Naming the key it replaces makes the statement good once: after any
/// change of the key, played again, it no longer matches.
pub fn reset_message(bank: &str, cpf: &Cpf, old_key_hex: &str, new_key_hex: &str) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, RESET_DOMAIN);
    put(&mut m, bank.as_bytes());
    put(&mut m, cpf.as_str().as_bytes());
    put(&mut m, old_key_hex.as_bytes());
    put(&mut m, new_key_hex.as_bytes());
    m
}

/// Checks an operator's reset of `user`'s key at `bank` to `new_key_hex`, signed `sig_hex` by
/// one of `operators`. The user's rotation count stays: the reset is this bank's alone, and a
/// rotation other banks pass on afterwards must be signed by the key this bank now holds.
pub fn check_reset(bank: &str, user: &crate::domain::User, new_key_hex: &str, sig_hex: &str, operators: &[PublicKey]) -> Result<String, crate::error::Error> {
    use crate::error::Error;
    let Some(new_key) = PublicKey::from_hex(new_key_hex) else {
        return Err(Error::bad_request("bad_key", "the new key is not an Ed25519 public key (64 hex digits)"));
    };
    let m = reset_message(bank, &user.cpf, user.key.as_deref().unwrap_or(""), &new_key.to_hex());
    if !operators.iter().any(|k| verify(k, &m, sig_hex)) {
        return Err(Error::forbidden("bad_operator_signature", "the reset is not signed by an operator of this bank for the key it now holds"));
    }
    Ok(new_key.to_hex())
}

/// What a rotation does to `user` as this bank knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The next rotation, signed by the current key: apply it.
    Apply,
    /// Already applied here (the same key at that number): nothing to do.
    Done,
}

/// Checks a rotation of `user`'s key to `new_key_hex` as number `seq`, signed `sig_hex`.
pub fn check_rotation(user: &crate::domain::User, new_key_hex: &str, seq: u64, sig_hex: &str) -> Result<Rotation, crate::error::Error> {
    use crate::error::Error;
    let Some(new_key) = PublicKey::from_hex(new_key_hex) else {
        return Err(Error::bad_request("bad_key", "the new key is not an Ed25519 public key (64 hex digits)"));
    };
    if user.key_seq >= seq {
        return match user.key.as_deref() == Some(new_key.to_hex().as_str()) && user.key_seq == seq {
            true => Ok(Rotation::Done),
            false => Err(Error::conflict("stale_rotation", format!("rotation {seq} of {}: this bank is at rotation {}", user.cpf, user.key_seq))),
        };
    }
    if seq != user.key_seq + 1 {
        return Err(Error::conflict("rotation_gap", format!("rotation {seq} of {}: this bank expects rotation {}", user.cpf, user.key_seq + 1)));
    }
    let Some(current) = user.key.as_deref().and_then(PublicKey::from_hex) else {
        return Err(Error::rule("no_key", format!("{} has no key at this bank to rotate", user.cpf)));
    };
    if !verify(&current, &rotate_message(&user.cpf, &new_key.to_hex(), seq), sig_hex) {
        return Err(Error::forbidden("bad_rotation", "the rotation is not signed by the user's current key"));
    }
    Ok(Rotation::Apply)
}

/// A client's rotation (`POST /users/{cpf}/key`): as `check_rotation`, and one already
/// applied is answered as done (a retry) only if it is the very rotation applied, signed as
/// this bank keeps it. Naming the current key and number proves nothing: without this, an
/// unsigned request naming them was answered 200 with the user's record (found by the API
/// fuzz run, which read the key and number from a response and sent them back).
pub fn check_rotation_request(user: &crate::domain::User, new_key_hex: &str, seq: u64, sig_hex: &str) -> Result<Rotation, crate::error::Error> {
    let r = check_rotation(user, new_key_hex, seq, sig_hex)?;
    let sig = unhex::<64>(sig_hex);
    if r == Rotation::Done && !user.rotations.iter().any(|k| k.seq == seq && sig.is_some() && unhex::<64>(&k.sig) == sig) {
        return Err(crate::error::Error::forbidden("bad_rotation", "the rotation is not the one this bank applied at this number (not its signature)"));
    }
    Ok(r)
}

/// The rotations of `chain` (another bank's, oldest first) that `user` as this bank knows
/// them has not applied, each checked against the key before it. A chain that disagrees
/// with this bank's key (another key at this bank's number, or a next rotation not signed
/// by this bank's key) is a `key_mismatch`: the two banks hold different keys for the user.
pub fn catch_up(user: &crate::domain::User, chain: &[crate::domain::KeyRotation]) -> Result<Vec<crate::domain::KeyRotation>, crate::error::Error> {
    use crate::error::Error;
    let mut u = user.clone();
    let mut apply = Vec::new();
    for r in chain {
        match check_rotation(&u, &r.public_key, r.seq, &r.sig) {
            Ok(Rotation::Apply) => {
                u.key = PublicKey::from_hex(&r.public_key).map(|k| k.to_hex());
                u.key_seq = r.seq;
                apply.push(r.clone());
            }
            Ok(Rotation::Done) => {}
            // Older than this bank's number: nothing to check it against.
            Err(_) if r.seq < u.key_seq => {}
            Err(e) if e.code == "rotation_gap" => return Err(Error::conflict("rotation_gap", format!("{}; the chain does not reach back far enough", e.message))),
            Err(e) => return Err(Error::conflict("key_mismatch", format!("rotation {} of {} does not follow from this bank's key: {}", r.seq, user.cpf, e.message))),
        }
    }
    Ok(apply)
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
        // Rotation: signed by the current key, numbered; a replay or a skipped number refused.
        let mut u = crate::domain::User::new(c.clone(), "Ana").unwrap();
        u.key = Some(key_hex.clone());
        let next = UserKey::from_seed([8; 32]);
        let next_hex = next.public().to_hex();
        let rot = sign(&k, &rotate_message(&c, &next_hex, 1));
        assert_eq!(check_rotation(&u, &next_hex, 1, &rot).unwrap(), Rotation::Apply);
        assert_eq!(check_rotation(&u, &next_hex, 2, &rot).unwrap_err().code, "rotation_gap");
        let forged = sign(&next, &rotate_message(&c, &next_hex, 1));
        assert_eq!(check_rotation(&u, &next_hex, 1, &forged).unwrap_err().code, "bad_rotation", "signed by the new key only");
        u.key = Some(next_hex.clone());
        u.key_seq = 1;
        assert_eq!(check_rotation(&u, &next_hex, 1, &rot).unwrap(), Rotation::Done, "the same rotation again");
        assert_eq!(check_rotation(&u, &key_hex, 1, &rot).unwrap_err().code, "stale_rotation", "back to the old key");
        // From a client, "the same rotation again" must be the one applied, with its signature.
        assert_eq!(check_rotation_request(&u, &next_hex, 1, &rot).unwrap_err().code, "bad_rotation", "no rotation kept at 1");
        u.rotations.push(crate::domain::KeyRotation { public_key: next_hex.clone(), seq: 1, sig: rot.clone() });
        assert_eq!(check_rotation_request(&u, &next_hex, 1, &rot).unwrap(), Rotation::Done, "a retry");
        assert_eq!(check_rotation_request(&u, &next_hex, 1, &rot.to_uppercase()).unwrap(), Rotation::Done, "the same signature");
        assert_eq!(check_rotation_request(&u, &next_hex, 1, &forged).unwrap_err().code, "bad_rotation", "another signature");
        assert_eq!(check_rotation_request(&u, &next_hex, 1, &"00".repeat(64)).unwrap_err().code, "bad_rotation", "no signature");
        // An operator's reset: signed by an operator, for the key the bank holds now; good once.
        let op = UserKey::from_seed([9; 32]);
        let fresh = UserKey::from_seed([10; 32]).public().to_hex();
        let reset = sign(&op, &reset_message("a:1", &c, &next_hex, &fresh));
        assert_eq!(check_reset("a:1", &u, &fresh, &reset, &[op.public()]).unwrap(), fresh);
        assert_eq!(check_reset("b:1", &u, &fresh, &reset, &[op.public()]).unwrap_err().code, "bad_operator_signature", "another bank");
        assert_eq!(check_reset("a:1", &u, &fresh, &reset, &[k.public()]).unwrap_err().code, "bad_operator_signature", "not an operator");
        let mut after = u.clone();
        after.key = Some(fresh.clone());
        assert_eq!(check_reset("a:1", &after, &fresh, &reset, &[op.public()]).unwrap_err().code, "bad_operator_signature", "played again");
        let m1 = open_account_message("a:1", AccountKind::Joint, &[c.clone(), other.clone()], 5);
        assert_ne!(m1, open_account_message("a:1", AccountKind::Joint, &[c.clone()], 5));
    }

    #[test]
    fn a_bank_that_missed_rotations_catches_up_from_the_chain_and_sees_a_mismatch() {
        use crate::domain::KeyRotation;
        let c = Cpf::from_base(123_456_789);
        let keys: Vec<UserKey> = (1..=4).map(|i| UserKey::from_seed([i; 32])).collect();
        let hex = |i: usize| keys[i].public().to_hex();
        let chain: Vec<KeyRotation> = (1..=3).map(|s| KeyRotation { public_key: hex(s), seq: s as u64, sig: sign(&keys[s - 1], &rotate_message(&c, &hex(s), s as u64)) }).collect();
        let mut behind = crate::domain::User::new(c.clone(), "Ana").unwrap();
        behind.key = Some(hex(0));
        assert_eq!(catch_up(&behind, &chain).unwrap(), chain, "all three, in order");
        behind.key = Some(hex(1));
        behind.key_seq = 1;
        assert_eq!(catch_up(&behind, &chain).unwrap(), chain[1..].to_vec(), "the two it missed");
        behind.key = Some(hex(3));
        behind.key_seq = 3;
        assert!(catch_up(&behind, &chain).unwrap().is_empty(), "up to date");
        let mut reset = behind.clone();
        reset.key = Some(UserKey::from_seed([9; 32]).public().to_hex());
        reset.key_seq = 1;
        assert_eq!(catch_up(&reset, &chain).unwrap_err().code, "key_mismatch", "another key at this number");
        assert_eq!(catch_up(&behind, &chain[2..]).unwrap(), vec![], "a short chain of what it has");
        let mut far = behind.clone();
        far.key = Some(hex(0));
        far.key_seq = 0;
        assert_eq!(catch_up(&far, &chain[2..]).unwrap_err().code, "rotation_gap", "too far behind");
    }
}
