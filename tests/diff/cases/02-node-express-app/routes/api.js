module.exports = (app) => {};
