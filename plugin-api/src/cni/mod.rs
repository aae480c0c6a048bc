//! The CNI protocol (spec 1.1.0 and older versions): types, environment, results, errors.
